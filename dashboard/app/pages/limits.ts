import { ApiError, api } from '../api.js';
import { fill, h, toast } from '../dom.js';

/** The limits of a VM and of a VM pool (the API's fields; api/vms/limits.ts), as the pages show them. */
export const LIMIT_FIELDS = [
  { field: 'cpuLimitPercent', label: 'CPU', unit: '% of each vCPU' },
  { field: 'netInboundKiBps', label: 'Network in, average', unit: 'KiB/s' },
  { field: 'netInboundPeakKiBps', label: 'Network in, peak', unit: 'KiB/s' },
  { field: 'netInboundBurstKiB', label: 'Network in, burst', unit: 'KiB' },
  { field: 'netOutboundKiBps', label: 'Network out, average', unit: 'KiB/s' },
  { field: 'netOutboundPeakKiBps', label: 'Network out, peak', unit: 'KiB/s' },
  { field: 'netOutboundBurstKiB', label: 'Network out, burst', unit: 'KiB' },
  { field: 'diskReadBytesPerSec', label: 'Disk read', unit: 'bytes/s' },
  { field: 'diskWriteBytesPerSec', label: 'Disk write', unit: 'bytes/s' },
  { field: 'diskReadIops', label: 'Disk read', unit: 'operations/s' },
  { field: 'diskWriteIops', label: 'Disk write', unit: 'operations/s' },
] as const;

/** A VM or VM pool as the API answers it (its limit fields among the rest). */
export type Item = Record<string, unknown> & { id: number };

const effectiveOf = (field: string) => `effective${field[0].toUpperCase()}${field.slice(1)}`;
const shown = (v: unknown, unit: string) =>
  typeof v === 'number' ? `${v.toLocaleString('en')} ${unit}` : 'none';

/**
 * A card with each limit: a VM's own and the one its host applies (the lower of its own and its VM pool's), or a
 * VM pool's. Whoever may change them gets a field per limit (empty: none) and a Save button; the PATCH applies
 * them at once to running VMs, and a refusal (a host that cannot apply one) is shown, the limits unchanged.
 */
export function limitsPanel(options: {
  kind: 'vm' | 'pool';
  item: Item;
  editable: boolean;
  saved?: (item: Item) => void;
}): { el: HTMLElement; update(item: Item): void } {
  const body = h('div');
  const el = h(
    'section',
    { class: 'card limits', 'aria-label': 'Limits' },
    h('h2', null, 'Limits'),
    h(
      'p',
      { class: 'muted' },
      options.kind === 'vm'
        ? "Applied is what the host enforces: the lower of the VM's own and its VM pool's. Network limits apply to NICs on a libvirt network, bridge or tap (not qemu's user network)."
        : "The ceiling of each VM's limit in this pool, and the limit of a VM with none of its own.",
    ),
    body,
  );
  const inputs = new Map<string, HTMLInputElement>();
  const error = h('p', { class: 'error', role: 'alert' });
  let item = options.item;

  const draw = () => {
    inputs.clear();
    const rows = LIMIT_FIELDS.map((l) => {
      const own = item[l.field];
      const input = h('input', {
        type: 'number',
        min: '1',
        step: '1',
        name: l.field,
        'aria-label': `${l.label} (${l.unit})`,
        placeholder: 'none',
        value: typeof own === 'number' ? String(own) : '',
      });
      inputs.set(l.field, input);
      return h(
        'tr',
        { 'data-limit': l.field },
        h('th', { scope: 'row' }, `${l.label} (${l.unit})`),
        h('td', { class: 'own' }, options.editable ? input : shown(own, l.unit)),
        options.kind === 'vm' && h('td', { class: 'effective' }, shown(item[effectiveOf(l.field)], l.unit)),
      );
    });
    fill(
      body,
      h(
        'form',
        { onsubmit: (e: Event) => void save(e) },
        h(
          'table',
          { class: 'data' },
          h(
            'thead',
            null,
            h(
              'tr',
              null,
              h('th', null, 'Limit'),
              h('th', null, options.kind === 'vm' ? "The VM's own" : 'Value'),
              options.kind === 'vm' && h('th', null, 'Applied'),
            ),
          ),
          h('tbody', null, rows),
        ),
        options.editable && [error, h('button', { type: 'submit' }, 'Save limits')],
      ),
    );
  };

  async function save(e: Event): Promise<void> {
    e.preventDefault();
    error.textContent = '';
    const patch: Record<string, number | null> = {};
    for (const l of LIMIT_FIELDS) {
      const raw = inputs.get(l.field)!.value.trim();
      const value = raw === '' ? null : Number(raw);
      if (value !== (item[l.field] ?? null)) patch[l.field] = value;
    }
    if (!Object.keys(patch).length) return;
    try {
      item = await api<Item>('PATCH', `/api/v1/${options.kind === 'vm' ? 'vms' : 'pools'}/${item.id}`, patch);
      draw();
      toast('Limits saved');
      options.saved?.(item);
    } catch (err) {
      error.textContent = err instanceof ApiError ? err.message : String(err);
      const field = err instanceof ApiError ? String(err.body.field ?? '') : '';
      inputs.get(field)?.focus();
    }
  }

  draw();
  return {
    el,
    update(fresh) {
      item = fresh;
      draw();
    },
  };
}
