import { get, type List, query } from '../api.js';
import { badge, h } from '../dom.js';
import { ago } from '../format.js';
import { onLive } from '../live.js';
import { dataTable } from '../table.js';
import type { CollectdEvent } from '../types.js';

const SEVERITIES = ['failure', 'warning', 'okay'] as const;

const joined = (a: string, b: string) => (b ? `${a}-${b}` : a);

/**
 * The collectd notifications of a host or a VM, newest first, for its page: severity, time, plugin/type and
 * message, filtered by severity. A notification arriving (`event` live event) for the same host or VM reloads
 * the list, so it shows without a page reload.
 */
export function eventsPanel(subject: { hostId: number } | { vmId: number }): {
  el: HTMLElement;
  dispose(): void;
} {
  const url =
    'hostId' in subject ? `/api/v1/hosts/${subject.hostId}/events` : `/api/v1/vms/${subject.vmId}/events`;
  const severity = h(
    'select',
    { 'aria-label': 'Notification severity', onchange: () => void load() },
    h('option', { value: '' }, 'any severity'),
    SEVERITIES.map((s) => h('option', { value: s }, s)),
  );
  const table = dataTable<CollectdEvent>({
    label: 'Events',
    pageSize: 20,
    empty: 'No collectd notifications.',
    search: (e) => `${e.severity} ${e.plugin} ${e.type} ${e.message}`,
    columns: [
      {
        // the table sorts by its first column, ascending: newest first
        title: 'Time',
        value: (e) => -Date.parse(e.time),
        render: (e) => h('time', { datetime: e.time, title: new Date(e.time).toLocaleString() }, ago(e.time)),
      },
      { title: 'Severity', value: (e) => e.severity, render: (e) => badge(e.severity) },
      {
        title: 'Plugin / type',
        value: (e) => `${joined(e.plugin, e.pluginInstance)} / ${joined(e.type, e.typeInstance)}`,
      },
      { title: 'Message', value: (e) => e.message },
      { title: 'From', value: (e) => e.host, secondary: true },
    ],
  });
  let timer: number | undefined;
  async function load(): Promise<void> {
    const list = await get<List<CollectdEvent>>(
      `${url}${query({ severity: severity.value, limit: 200 })}`,
    ).catch(() => ({ items: [] as CollectdEvent[], total: 0 }));
    table.setRows(list.items);
  }
  const off = onLive('event', (e: CollectdEvent) => {
    if ('hostId' in subject ? e.hostId !== subject.hostId : e.vmId !== subject.vmId) return;
    window.clearTimeout(timer);
    timer = window.setTimeout(() => void load(), 200);
  });
  void load();
  return {
    el: h(
      'section',
      { class: 'card events' },
      h('h2', null, 'Events'),
      h('div', { class: 'filters' }, severity),
      table.el,
    ),
    dispose() {
      off();
      window.clearTimeout(timer);
    },
  };
}
