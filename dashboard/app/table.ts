import { fill, h } from './dom.js';

export interface Column<T> {
  title: string;
  /** What sorting compares (and the cell shows, without `render`). */
  value: (row: T) => string | number | null;
  render?: (row: T) => Node | string;
  /** Hidden on narrow screens. */
  secondary?: boolean;
  numeric?: boolean;
}

export interface Table<T> {
  el: HTMLElement;
  setRows(rows: T[]): void;
  /** Draws the current page again (live figures changed). */
  redraw(): void;
}

/**
 * A sortable, filterable table that draws one page of rows at a time, so a pool of 500 hosts costs the
 * same as one of 5. Headers are buttons (keyboard: Tab, Enter); `aria-sort` tells which column sorts.
 */
export function dataTable<T>(options: {
  label: string;
  columns: Column<T>[];
  rows?: T[];
  pageSize?: number;
  empty?: string;
  search?: (row: T) => string;
}): Table<T> {
  const pageSize = options.pageSize ?? 50;
  let rows = options.rows ?? [];
  let sortBy = 0;
  let descending = false;
  let page = 0;
  let filter = '';

  const thead = h('thead');
  const tbody = h('tbody');
  const status = h('span', { class: 'page-status', 'aria-live': 'polite' });
  const prev = h('button', { type: 'button', class: 'small', onclick: () => go(page - 1) }, '‹ Previous');
  const next = h('button', { type: 'button', class: 'small', onclick: () => go(page + 1) }, 'Next ›');
  const filterInput = options.search
    ? h('input', {
        type: 'search',
        class: 'table-filter',
        placeholder: 'Filter…',
        'aria-label': `Filter ${options.label}`,
        oninput: (e: Event) => {
          filter = (e.target as HTMLInputElement).value.trim().toLowerCase();
          page = 0;
          draw();
        },
      })
    : null;
  const table = h('table', { class: 'data', 'aria-label': options.label }, thead, tbody);
  const el = h(
    'div',
    { class: 'table-wrap' },
    filterInput,
    h('div', { class: 'scroll' }, table),
    h('div', { class: 'pager' }, prev, status, next),
  );

  function go(to: number): void {
    page = to;
    draw();
  }

  function visible(): T[] {
    const col = options.columns[sortBy];
    const matching =
      filter && options.search ? rows.filter((r) => options.search!(r).toLowerCase().includes(filter)) : rows;
    const sorted = [...matching].sort((a, b) => {
      const [x, y] = [col.value(a), col.value(b)];
      if (x === y) return 0;
      if (x === null) return 1;
      if (y === null) return -1;
      const order =
        typeof x === 'number' && typeof y === 'number'
          ? x - y
          : String(x).localeCompare(String(y), undefined, { numeric: true });
      return descending ? -order : order;
    });
    return sorted;
  }

  function drawHead(): void {
    fill(
      thead,
      h(
        'tr',
        null,
        options.columns.map((col, i) =>
          h(
            'th',
            {
              scope: 'col',
              class:
                [col.secondary ? 'secondary' : '', col.numeric ? 'num' : ''].join(' ').trim() || undefined,
              'aria-sort': i === sortBy ? (descending ? 'descending' : 'ascending') : 'none',
            },
            h(
              'button',
              {
                type: 'button',
                class: 'sort',
                onclick: () => {
                  descending = i === sortBy ? !descending : false;
                  sortBy = i;
                  drawHead();
                  draw();
                },
              },
              col.title,
              i === sortBy ? (descending ? ' ▾' : ' ▴') : '',
            ),
          ),
        ),
      ),
    );
  }

  function draw(): void {
    const all = visible();
    const pages = Math.max(1, Math.ceil(all.length / pageSize));
    page = Math.min(Math.max(page, 0), pages - 1);
    const shown = all.slice(page * pageSize, (page + 1) * pageSize);
    fill(
      tbody,
      shown.length === 0
        ? h(
            'tr',
            null,
            h('td', { colspan: options.columns.length, class: 'empty' }, options.empty ?? 'Nothing here.'),
          )
        : shown.map((row) =>
            h(
              'tr',
              null,
              options.columns.map((col) =>
                h(
                  'td',
                  {
                    class:
                      [col.secondary ? 'secondary' : '', col.numeric ? 'num' : ''].join(' ').trim() ||
                      undefined,
                    'data-label': col.title,
                  },
                  col.render ? col.render(row) : String(col.value(row) ?? '–'),
                ),
              ),
            ),
          ),
    );
    status.textContent =
      all.length <= pageSize
        ? `${all.length} in all`
        : `${page * pageSize + 1}–${page * pageSize + shown.length} of ${all.length}`;
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
    prev.hidden = next.hidden = all.length <= pageSize;
  }

  drawHead();
  draw();
  return {
    el,
    setRows(next: T[]) {
      rows = next;
      draw();
    },
    redraw: draw,
  };
}
