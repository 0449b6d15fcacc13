import { get, query } from '../api.js';
import { badge, h, meter } from '../dom.js';
import { ago, mib, number, percent } from '../format.js';
import type { MetricChoice } from '../graph.js';
import { onLive } from '../live.js';
import { hostName, poolPath, state } from '../state.js';
import { type Column, dataTable } from '../table.js';
import type { Host, Task, TaskAction, TaskState, Vm } from '../types.js';

export const HOST_METRICS: MetricChoice[] = [
  { name: 'cpu', title: 'CPU busy' },
  { name: 'memory', title: 'Memory' },
  { name: 'load', title: 'Load' },
  { name: 'network', title: 'Network' },
  { name: 'disk', title: 'Disk' },
];

export const VM_METRICS: MetricChoice[] = [
  { name: 'cpu', title: 'CPU (share of its vCPUs)' },
  { name: 'memory', title: 'Memory' },
  { name: 'disk', title: 'Disk I/O' },
  { name: 'network', title: 'Network I/O' },
];

/** Home › parent pool › pool, as links. */
export function breadcrumbs(poolId: number, last?: string): HTMLElement {
  const path = poolPath(poolId);
  return h(
    'nav',
    { class: 'crumbs', 'aria-label': 'Breadcrumbs' },
    h('a', { href: '#/' }, 'Overview'),
    path.map((p) => [' › ', h('a', { href: `#/pool/${p.id}` }, p.name)]),
    last && [' › ', h('span', null, last)],
  );
}

export function hostsTable(label: string): ReturnType<typeof dataTable<Host>> {
  const columns: Column<Host>[] = [
    {
      title: 'Host',
      value: (x) => x.hostname,
      render: (x) => h('a', { href: `#/host/${x.id}` }, x.hostname),
    },
    {
      title: 'State',
      value: (x) => (x.enabled ? x.state : 'disabled'),
      render: (x) => badge(x.enabled ? x.state : 'disabled'),
    },
    {
      title: 'CPU load',
      value: (x) => state.hostLive.get(x.id)?.cpu ?? x.live?.cpuBusyPercent ?? null,
      render: (x) => {
        const cpu = state.hostLive.get(x.id)?.cpu ?? x.live?.cpuBusyPercent ?? null;
        return meter(cpu, 100, percent(cpu));
      },
      numeric: true,
    },
    {
      title: 'Load 1 min',
      value: (x) => state.hostLive.get(x.id)?.load1 ?? x.live?.load1 ?? null,
      render: (x) => number(state.hostLive.get(x.id)?.load1 ?? x.live?.load1 ?? null),
      numeric: true,
      secondary: true,
    },
    { title: 'CPUs', value: (x) => x.cpus, numeric: true, secondary: true },
    {
      title: 'Memory',
      value: (x) => x.memoryMiB,
      render: (x) => mib(x.memoryMiB),
      numeric: true,
      secondary: true,
    },
    { title: 'VMs', value: (x) => vmsOnHost(x.id).length, numeric: true },
    { title: 'Last seen', value: (x) => x.lastSeen ?? null, render: (x) => ago(x.lastSeen), secondary: true },
  ];
  return dataTable<Host>({ label, columns, empty: 'No hosts.', search: (x) => `${x.hostname} ${x.state}` });
}

export function vmsTable(label: string): ReturnType<typeof dataTable<Vm>> {
  const columns: Column<Vm>[] = [
    { title: 'VM', value: (v) => v.name, render: (v) => h('a', { href: `#/vm/${v.id}` }, v.name) },
    { title: 'State', value: (v) => v.state, render: (v) => badge(v.state) },
    {
      title: 'CPU',
      value: (v) => state.vmLive.get(v.id)?.cpu ?? null,
      render: (v) => {
        const cpu = state.vmLive.get(v.id)?.cpu ?? null;
        return meter(cpu, 100, percent(cpu));
      },
      numeric: true,
    },
    {
      title: 'Host',
      value: (v) => hostName(v.hostId),
      render: (v) => (v.hostId === null ? '–' : h('a', { href: `#/host/${v.hostId}` }, hostName(v.hostId))),
      secondary: true,
    },
    { title: 'vCPUs', value: (v) => v.vcpus, numeric: true, secondary: true },
    {
      title: 'Memory',
      value: (v) => v.memoryMiB,
      render: (v) => mib(v.memoryMiB),
      numeric: true,
      secondary: true,
    },
  ];
  return dataTable<Vm>({
    label,
    columns,
    empty: 'No VMs.',
    search: (v) => `${v.name} ${v.state} ${hostName(v.hostId)}`,
  });
}

export function vmsOnHost(hostId: number): Vm[] {
  return [...state.vms.values()].filter((v) => v.hostId === hostId);
}

// Every state and action the API's task schema lists, once each (tsc refuses a missing or unknown key).
const TASK_STATES = Object.keys({
  queued: 0,
  running: 0,
  done: 0,
  failed: 0,
  cancelled: 0,
} satisfies Record<TaskState, 0>);
const TASK_ACTIONS = Object.keys({
  start: 0,
  shutdown: 0,
  destroy: 0,
  suspend: 0,
  resume: 0,
  save: 0,
  restore: 0,
  migrate: 0,
  delete: 0,
} satisfies Record<TaskAction, 0>);

/** The tasks of a pool (or of one target), newest first, filtered by state and type, kept live. */
export function tasksPanel(filter: { poolId?: number; targetType?: string; targetId?: number }): {
  el: HTMLElement;
  dispose(): void;
} {
  const stateSelect = h(
    'select',
    { 'aria-label': 'Task state', onchange: () => void load() },
    h('option', { value: '' }, 'any state'),
    TASK_STATES.map((s) => h('option', { value: s }, s)),
  );
  const actionSelect = h(
    'select',
    { 'aria-label': 'Task type', onchange: () => void load() },
    h('option', { value: '' }, 'any type'),
    TASK_ACTIONS.map((s) => h('option', { value: s }, s)),
  );
  const table = dataTable<Task>({
    label: 'Tasks',
    pageSize: 20,
    empty: 'No tasks.',
    columns: [
      { title: '#', value: (t) => t.id, numeric: true },
      { title: 'Task', value: (t) => t.action },
      { title: 'Target', value: (t) => `${t.targetType} ${t.targetId}`, render: (t) => targetLink(t) },
      { title: 'State', value: (t) => t.state, render: (t) => taskState(t) },
      {
        title: 'Created',
        value: (t) => t.createdAt ?? null,
        render: (t) => ago(t.createdAt),
        secondary: true,
      },
    ],
  });
  let timer: number | undefined;
  async function load(): Promise<void> {
    const list = await get<{ items: Task[] }>(
      `/api/v1/tasks${query({ ...filter, state: stateSelect.value, action: actionSelect.value, limit: 100 })}`,
    ).catch(() => ({ items: [] as Task[] }));
    table.setRows(list.items);
  }
  const off = onLive('task', (t: Task) => {
    if (filter.poolId !== undefined && t.poolId !== filter.poolId) return;
    if (
      filter.targetId !== undefined &&
      (t.targetId !== filter.targetId || t.targetType !== filter.targetType)
    )
      return;
    window.clearTimeout(timer);
    timer = window.setTimeout(() => void load(), 200);
  });
  void load();
  return {
    el: h(
      'section',
      { class: 'tasks card' },
      h('h2', null, 'Tasks'),
      h('div', { class: 'filters' }, stateSelect, actionSelect),
      table.el,
    ),
    dispose() {
      off();
      window.clearTimeout(timer);
    },
  };
}

function targetLink(t: Task): Node | string {
  if (t.targetType === 'vm')
    return h('a', { href: `#/vm/${t.targetId}` }, state.vms.get(t.targetId)?.name ?? `VM ${t.targetId}`);
  if (t.targetType === 'host') return h('a', { href: `#/host/${t.targetId}` }, hostName(t.targetId));
  return `${t.targetType} ${t.targetId}`;
}

/** A task's state, with its progress while it runs and its error when it failed. */
export function taskState(t: Pick<Task, 'state' | 'progress' | 'error'>): HTMLElement {
  const el = h('span', { class: 'task-state' }, badge(t.state));
  if (t.state === 'running' && t.progress !== null && t.progress !== undefined) {
    el.append(h('progress', { max: 1, value: t.progress, 'aria-label': 'progress' }));
  }
  if (t.error) el.append(h('span', { class: 'error' }, ` ${t.error}`));
  return el;
}

/** Key–value facts as a description list. */
export function facts(pairs: Array<[string, Node | string | number | null | undefined]>): HTMLElement {
  return h(
    'dl',
    { class: 'facts' },
    pairs.map(([k, v]) => [h('dt', null, k), h('dd', null, v === null || v === undefined ? '–' : v)]),
  );
}
