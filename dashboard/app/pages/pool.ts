import { get } from '../api.js';
import { fill, h, meter } from '../dom.js';
import { amount, mib } from '../format.js';
import { graphPanel } from '../graph.js';
import { onLive } from '../live.js';
import type { Page } from '../page.js';
import { onStateChange, state, subtree } from '../state.js';
import { RUNNING_STATES } from '../types.js';
import { alertsPanel } from './alerts.js';
import { balancerPanel } from './balancer.js';
import { breadcrumbs, HOST_METRICS, hostsTable, tasksPanel, VM_METRICS, vmsTable } from './common.js';
import { enforcementPanel } from './enforcement.js';
import { forecastPanel } from './forecast.js';
import { limitsPanel } from './limits.js';
import { rightsizingPanel } from './rightsizing.js';
import { type StoragePool, storagePoolsTable } from './storage.js';

interface UsedLimit {
  used: number;
  limit: number | null;
}
interface UsageLine {
  vcpus: UsedLimit;
  memoryMiB: UsedLimit;
  storageGiB: UsedLimit;
  nics: UsedLimit;
  vms: UsedLimit;
}
interface Usage {
  total: UsageLine;
  users: Array<UsageLine & { userId: number; username: string }>;
}

/**
 * A pool: availability bars (hardware pool: what running VMs take of its hosts; VM pool: use against quota, in
 * total and per user), its hosts and VMs, its tasks and its graphs.
 */
export const poolPage: Page = async (main, [id]) => {
  const poolId = Number(id);
  const pool = state.pools.get(poolId);
  if (!pool) throw new Error('This pool does not exist, or you may not see it.');
  const tree = subtree(poolId);
  const bars = h('div', { class: 'bars' });
  const hosts = hostsTable(`Hosts of ${pool.name}`);
  const vms = vmsTable(`VMs of ${pool.name}`);
  const tasks = tasksPanel({ poolId });
  const graphs = graphPanel(`pool:${poolId}`, pool.kind === 'hardware' ? HOST_METRICS : VM_METRICS);
  const alerts = alertsPanel({ poolId });
  const enforcement = enforcementPanel(poolId);
  const forecast = forecastPanel(poolId);
  const rightsizing = rightsizingPanel(poolId);
  const storage = storagePoolsTable(`Storage of ${pool.name}`);
  if (pool.kind === 'hardware') {
    void get<{ items: StoragePool[] }>(`/api/v1/storage-pools?poolId=${poolId}&limit=1000`)
      .then((answer) => storage.setRows(answer.items))
      .catch(() => undefined);
  }
  // A VM pool's limits (its VMs' ceilings): its admins change them.
  const limits = h('div');
  if (pool.kind === 'vm') {
    void get<Record<string, unknown> & { id: number }>(`/api/v1/pools/${poolId}`).then(
      (item) =>
        fill(
          limits,
          limitsPanel({
            kind: 'pool',
            item,
            editable: !!state.me?.isSuperAdmin || pool.role === 'admin' || pool.role === 'super',
          }).el,
        ),
      () => undefined,
    );
  }
  // The balancer is a hardware pool's, shown to its admins (who alone may see its plan and change it).
  const balancer =
    pool.kind === 'hardware' && (pool.role === 'admin' || pool.role === 'super')
      ? balancerPanel(poolId)
      : undefined;

  const poolHosts = () => [...state.hosts.values()].filter((x) => tree.has(x.poolId));
  const poolVms = () => {
    const hostIds = new Set(poolHosts().map((x) => x.id));
    return [...state.vms.values()].filter(
      (v) => tree.has(v.poolId) || (v.hostId !== null && hostIds.has(v.hostId)),
    );
  };

  let usage: Usage | undefined;
  const drawBars = () => {
    if (pool.kind === 'hardware') {
      const capacity = poolHosts().filter((x) => x.enabled);
      const cpus = capacity.reduce((n, x) => n + x.cpus, 0);
      const memory = capacity.reduce((n, x) => n + x.memoryMiB, 0);
      const running = poolVms().filter((v) => RUNNING_STATES.has(v.state));
      const usedCpus = running.reduce((n, v) => n + v.vcpus, 0);
      const usedMemory = running.reduce((n, v) => n + v.memoryMiB, 0);
      fill(
        bars,
        bar('vCPUs of running VMs', usedCpus, cpus, `${usedCpus} of ${cpus} CPUs`),
        bar('Memory of running VMs', usedMemory, memory, `${mib(usedMemory)} of ${mib(memory)}`),
      );
    } else if (usage) {
      const line = (title: string, u: UsageLine) =>
        h(
          'div',
          { class: 'usage-line' },
          h('h3', null, title),
          quotaBar('vCPUs', u.vcpus, amount),
          quotaBar('Memory', u.memoryMiB, mib),
          quotaBar('Storage (GiB)', u.storageGiB, amount),
          quotaBar('VMs', u.vms, amount),
        );
      fill(
        bars,
        line('Pool total', usage.total),
        usage.users.map((u) => line(u.username, u)),
      );
    }
  };
  const loadUsage = async () => {
    if (pool.kind !== 'vm') return;
    usage = await get<Usage>(`/api/v1/pools/${poolId}/usage`).catch(() => undefined);
    drawBars();
  };

  const childPools = [...state.pools.values()].filter((p) => p.parentId === poolId);
  fill(
    main,
    breadcrumbs(pool.parentId ?? poolId),
    h(
      'h1',
      null,
      pool.name,
      ' ',
      h('span', { class: 'muted kind' }, `${pool.kind} pool`, pool.role ? ` · your role: ${pool.role}` : ''),
    ),
    childPools.length > 0 &&
      h(
        'p',
        { class: 'children' },
        'Pools inside: ',
        childPools.map((c, i) => [i ? ', ' : '', h('a', { href: `#/pool/${c.id}` }, c.name)]),
      ),
    h(
      'section',
      { class: 'card' },
      h('h2', null, pool.kind === 'hardware' ? 'Availability' : 'Use against quota'),
      bars,
    ),
    forecast.el,
    limits,
    alerts.el,
    enforcement.el,
    pool.kind === 'hardware' && h('section', { class: 'card' }, h('h2', null, 'Hosts'), hosts.el),
    pool.kind === 'hardware' && h('section', { class: 'card' }, h('h2', null, 'Storage'), storage.el),
    balancer?.el,
    h('section', { class: 'card' }, h('h2', null, 'VMs'), vms.el),
    rightsizing.el,
    tasks.el,
    h('section', { class: 'card' }, h('h2', null, 'Usage graphs'), graphs.el),
  );

  const refresh = () => {
    hosts.setRows(poolHosts());
    vms.setRows(poolVms());
    drawBars();
  };
  refresh();
  void loadUsage();
  const offState = onStateChange(() => {
    refresh();
    void loadUsage();
  });
  const offMetrics = onLive('metrics', () => {
    hosts.redraw();
    vms.redraw();
  });
  return () => {
    offState();
    offMetrics();
    tasks.dispose();
    graphs.dispose();
    alerts.dispose();
    enforcement.dispose();
    forecast.dispose();
    balancer?.dispose();
  };
};

function bar(title: string, used: number, total: number, label: string): HTMLElement {
  return h('div', { class: 'bar-line' }, h('span', { class: 'bar-title' }, title), meter(used, total, label));
}

function quotaBar(title: string, u: UsedLimit, show: (n: number) => string): HTMLElement {
  const label = u.limit === null ? `${show(u.used)} (no limit)` : `${show(u.used)} of ${show(u.limit)}`;
  return bar(title, u.used, u.limit ?? 0, label);
}
