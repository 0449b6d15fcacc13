import { ApiError } from './api.js';
import { h, toast } from './dom.js';

export interface Field {
  name: string;
  label: string;
  type?: 'text' | 'password' | 'number' | 'checkbox' | 'select' | 'url';
  options?: Array<[string, string]>;
  required?: boolean;
  placeholder?: string;
}

/**
 * A small labelled form. `submit` gets the values (numbers as numbers, empty fields left out) and may throw an
 * ApiError: its message is shown, and the field it names is focused.
 */
export function form(options: {
  title: string;
  fields: Field[];
  submitLabel: string;
  submit(values: Record<string, unknown>): Promise<void>;
}): HTMLFormElement {
  const inputs = new Map<string, HTMLInputElement | HTMLSelectElement>();
  const error = h('p', { class: 'error', role: 'alert' });
  const rows = options.fields.map((f) => {
    const id = `f-${options.title.replace(/\W+/g, '-')}-${f.name}`.toLowerCase();
    const input =
      f.type === 'select'
        ? h(
            'select',
            { id, name: f.name },
            (f.options ?? []).map(([value, label]) => h('option', { value }, label)),
          )
        : h('input', {
            id,
            name: f.name,
            type: f.type ?? 'text',
            required: f.required,
            placeholder: f.placeholder,
            step: f.type === 'number' ? 'any' : undefined,
          });
    inputs.set(f.name, input);
    return f.type === 'checkbox'
      ? h('label', { class: 'check', for: id }, input, ` ${f.label}`)
      : [h('label', { for: id }, f.label), input];
  });
  const el = h(
    'form',
    {
      class: 'form',
      onsubmit: async (e: Event) => {
        e.preventDefault();
        error.textContent = '';
        const values: Record<string, unknown> = {};
        for (const f of options.fields) {
          const input = inputs.get(f.name)!;
          if (f.type === 'checkbox') values[f.name] = (input as HTMLInputElement).checked;
          else if (input.value === '') continue;
          else values[f.name] = f.type === 'number' ? Number(input.value) : input.value;
        }
        try {
          await options.submit(values);
          el.reset();
          toast(`${options.title}: done`);
        } catch (err) {
          error.textContent = err instanceof ApiError ? err.message : String(err);
          const field = err instanceof ApiError ? String(err.body.field ?? '') : '';
          inputs.get(field)?.focus();
        }
      },
    },
    h('h3', null, options.title),
    rows,
    error,
    h('button', { type: 'submit' }, options.submitLabel),
  );
  return el;
}
