import { get, type List, query } from '../api.js';
import { badge, h } from '../dom.js';
import { ago } from '../format.js';
import { onLive } from '../live.js';
import type { Page } from '../page.js';
import { hostName } from '../state.js';
import { dataTable, type Table } from '../table.js';
import type { Alert } from '../types.js';

/** When the alert entered its current state: firing since, else active since, else its last change. */
const since = (a: Alert) => a.firingSince ?? a.activeSince ?? a.stateChangedAt;

function alertsTable(label: string, empty: string): Table<Alert> {
  return dataTable<Alert>({
    label,
    pageSize: 50,
    empty,
    search: (a) => `${a.state} ${a.severity} ${a.ruleName} ${a.subject}`,
    columns: [
      { title: 'State', value: (a) => a.state, render: (a) => badge(a.state) },
      { title: 'Severity', value: (a) => a.severity, render: (a) => badge(a.severity) },
      { title: 'Rule', value: (a) => a.ruleName },
      {
        title: 'Subject',
        value: (a) => a.subject,
        render: (a) =>
          a.hostId !== null
            ? h('a', { href: `#/host/${a.hostId}` }, a.subject || hostName(a.hostId))
            : a.subject,
      },
      { title: 'Since', value: (a) => since(a), render: (a) => ago(since(a)) },
    ],
  });
}

/**
 * Alerts matching `filter`, reloaded (debounced) on every `alert` live event; the API filters by pool and host,
 * so a page only lists its own.
 */
function liveAlerts(
  table: Table<Alert>,
  filter: () => Record<string, string | number | undefined>,
): { load(): Promise<void>; dispose(): void } {
  let timer: number | undefined;
  const load = async () => {
    const list = await get<List<Alert>>(`/api/v1/alerts${query({ limit: 1000, ...filter() })}`).catch(() => ({
      items: [] as Alert[],
      total: 0,
    }));
    table.setRows(list.items);
  };
  const off = onLive('alert', () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => void load(), 200);
  });
  void load();
  return {
    load,
    dispose() {
      off();
      window.clearTimeout(timer);
    },
  };
}

/** `#/alerts`: the active alerts of what the user may see, or every recent one. */
export const alertsPage: Page = (main, _params, params) => {
  const table = alertsTable('Alerts', 'No alerts.');
  const which = h(
    'select',
    { 'aria-label': 'Which alerts', onchange: () => void alerts.load() },
    h('option', { value: 'active', selected: params.get('all') === null }, 'active'),
    h('option', { value: 'all', selected: params.get('all') !== null }, 'all, recent first'),
  );
  const alerts = liveAlerts(table, () => ({ active: which.value === 'active' ? 'true' : undefined }));
  main.append(
    h('h1', null, 'Alerts'),
    h('section', { class: 'card' }, h('div', { class: 'filters' }, which), table.el),
  );
  return () => alerts.dispose();
};

/** A pool's or a host's current (not ok) alerts, for its page. */
export function alertsPanel(filter: { poolId?: number; hostId?: number }): {
  el: HTMLElement;
  dispose(): void;
} {
  const table = alertsTable('Alerts', 'No current alerts.');
  const alerts = liveAlerts(table, () => ({ ...filter, active: 'true' }));
  return {
    el: h('section', { class: 'card alerts' }, h('h2', null, 'Alerts'), table.el),
    dispose: alerts.dispose,
  };
}

/** The header link to `#/alerts` with the number of firing alerts, kept current by `alert` live events. */
export function alertCount(): { el: HTMLElement; dispose(): void } {
  const count = h('span', { class: 'alert-count', 'data-count': '0' }, '0');
  const el = h(
    'a',
    { href: '#/alerts', class: 'alerts-link', 'aria-label': 'Firing alerts' },
    'Alerts ',
    count,
  );
  let timer: number | undefined;
  const load = async () => {
    const list = await get<List<Alert>>('/api/v1/alerts?state=firing&limit=1').catch(() => null);
    if (!list) return;
    count.textContent = String(list.total);
    count.dataset.count = String(list.total);
    el.setAttribute('aria-label', `${list.total} firing alerts`);
  };
  const off = onLive('alert', () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => void load(), 200);
  });
  void load();
  return {
    el,
    dispose() {
      off();
      window.clearTimeout(timer);
    },
  };
}
