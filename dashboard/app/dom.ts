type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, unknown> & { class?: string };

/**
 * Builds an element: `on<event>` attributes become listeners, `class`/`for`/`aria-*`/`data-*` attributes,
 * `value`/`checked`/`disabled`/`hidden`/`selected` properties. Text is always text: no HTML is parsed.
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value as EventListener);
    } else if (
      key === 'value' ||
      key === 'checked' ||
      key === 'disabled' ||
      key === 'hidden' ||
      key === 'selected'
    ) {
      (el as unknown as Record<string, unknown>)[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the element's content. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** A bar with a label, for load, usage and availability: `value` of `max` (max 0: empty). */
export function meter(value: number | null, max: number, label: string, warnAt = 0.85): HTMLElement {
  const share = value === null || max <= 0 ? 0 : Math.min(1, Math.max(0, value / max));
  const bar = h(
    'div',
    {
      class: `meter${share >= warnAt ? ' warn' : ''}`,
      role: 'meter',
      'aria-valuemin': 0,
      'aria-valuemax': max,
      'aria-valuenow': value ?? 0,
      'aria-label': label,
      title: label,
    },
    h('span', { class: 'fill', style: `width:${(share * 100).toFixed(1)}%` }),
    h('span', { class: 'text' }, label),
  );
  return bar;
}

export function badge(state: string): HTMLElement {
  return h('span', { class: `badge state-${state}`, 'data-state': state }, state);
}

export function link(href: string, ...children: Child[]): HTMLAnchorElement {
  return h('a', { href }, ...children);
}

/** A short-lived message at the bottom of the screen, read out by screen readers. */
export function toast(message: string, kind: 'info' | 'error' = 'info'): void {
  const area = document.getElementById('toasts');
  if (!area) return;
  const note = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, message);
  area.append(note);
  setTimeout(() => note.remove(), kind === 'error' ? 8000 : 4000);
}
