import { api, get } from '../api.js';
import { badge, fill, h, meter, toast } from '../dom.js';
import { ago, mib, number, percent } from '../format.js';
import { graphPanel } from '../graph.js';
import { onLive } from '../live.js';
import type { Page } from '../page.js';
import { onStateChange, state } from '../state.js';
import type { Host } from '../types.js';
import { alertsPanel } from './alerts.js';
import { breadcrumbs, facts, HOST_METRICS, tasksPanel, vmsOnHost, vmsTable } from './common.js';
import { eventsPanel } from './events.js';

/** A host: inventory, state, last seen, live figures, alerts, collectd notifications, its VMs, tasks and graphs. */
export const hostPage: Page = async (main, [id]) => {
  const hostId = Number(id);
  let host = await get<Host>(`/api/v1/hosts/${hostId}`);
  const role = state.pools.get(host.poolId)?.role;
  const head = h('div', { class: 'head' });
  const live = h('div', { class: 'live-figures', 'aria-live': 'off' });
  const inventory = h('div');
  const vms = vmsTable(`VMs on ${host.hostname}`);
  const tasks = tasksPanel({ targetType: 'host', targetId: hostId });
  const graphs = graphPanel(`host:${hostId}`, HOST_METRICS);
  const alerts = alertsPanel({ hostId });
  const events = eventsPanel({ hostId });

  const drawHead = () => {
    const canManage = state.me?.isSuperAdmin || role === 'admin' || role === 'super';
    fill(
      head,
      h('h1', null, host.hostname, ' ', badge(host.enabled ? host.state : 'disabled')),
      canManage &&
        h(
          'button',
          {
            type: 'button',
            onclick: async () => {
              try {
                host = {
                  ...host,
                  ...(await api<Host>('PATCH', `/api/v1/hosts/${hostId}`, { enabled: !host.enabled })),
                };
                drawHead();
              } catch (err) {
                toast((err as Error).message, 'error');
              }
            },
          },
          host.enabled ? 'Disable' : 'Enable',
        ),
    );
    fill(
      inventory,
      facts([
        ['URI', host.uri],
        ['State', badge(host.state)],
        ['Enabled', host.enabled ? 'yes' : 'no'],
        ['Last seen (collectd)', ago(host.lastSeen)],
        [
          'Last heartbeat (libvirt)',
          host.heartbeatError ? `${ago(host.heartbeatAt)} — ${host.heartbeatError}` : ago(host.heartbeatAt),
        ],
        ['Architecture', host.arch],
        [
          'CPUs',
          host.cores ? `${host.cpus} (${host.cores} cores${host.mhz ? `, ${host.mhz} MHz` : ''})` : host.cpus,
        ],
        ['Memory', mib(host.memoryMiB)],
        [
          'Virtualization',
          virtualization(host, canManage, (patched) => {
            host = { ...host, ...patched };
            drawHead();
          }),
        ],
        ['NICs', (host.nics ?? []).map((n) => `${n.name}${n.mac ? ` (${n.mac})` : ''}`).join(', ') || null],
        ['UUID', host.uuid],
      ]),
    );
  };
  const drawLive = () => {
    const fig = state.hostLive.get(hostId);
    const cpu = fig?.cpu ?? host.live?.cpuBusyPercent ?? null;
    const used = fig?.memoryUsedMiB ?? host.live?.memoryUsedMiB ?? null;
    const free = fig?.memoryFreeMiB ?? host.live?.memoryFreeMiB ?? null;
    // Of the host's memory (its inventory), not of used + free: cached and buffered memory count too.
    const total = host.memoryMiB > 0 ? host.memoryMiB : (used ?? 0) + (free ?? 0);
    fill(
      live,
      h(
        'div',
        { class: 'bar-line' },
        h('span', { class: 'bar-title' }, 'CPU busy'),
        meter(cpu, 100, percent(cpu)),
      ),
      h(
        'div',
        { class: 'bar-line' },
        h('span', { class: 'bar-title' }, 'Memory used'),
        meter(used, total, used === null ? '–' : `${mib(used)} of ${mib(total)}`),
      ),
      h('p', null, `Load: ${number(fig?.load1 ?? host.live?.load1 ?? null)}`),
    );
  };
  fill(
    main,
    breadcrumbs(host.poolId, host.hostname),
    head,
    h(
      'div',
      { class: 'two' },
      h('section', { class: 'card' }, h('h2', null, 'Inventory'), inventory),
      h('section', { class: 'card' }, h('h2', null, 'Now'), live),
    ),
    alerts.el,
    events.el,
    h('section', { class: 'card' }, h('h2', null, 'VMs on this host'), vms.el),
    tasks.el,
    h('section', { class: 'card' }, h('h2', null, 'Graphs'), graphs.el),
  );
  drawHead();
  drawLive();
  vms.setRows(vmsOnHost(hostId));
  const offState = onStateChange(() => {
    const known = state.hosts.get(hostId);
    if (known && (known.state !== host.state || known.enabled !== host.enabled)) {
      host = { ...host, state: known.state, enabled: known.enabled };
      drawHead();
    }
    vms.setRows(vmsOnHost(hostId));
  });
  const offMetrics = onLive('metrics', () => {
    drawLive();
    vms.redraw();
  });
  return () => {
    offState();
    offMetrics();
    tasks.dispose();
    graphs.dispose();
    alerts.dispose();
    events.dispose();
  };
};

/**
 * What guests get on this host (KVM or TCG emulation) and why, with the setting for those who may change it:
 * `auto` takes KVM only where libvirt offers it and the CPU shows vmx/svm.
 */
function virtualization(host: Host, canManage: boolean, changed: (host: Host) => void): HTMLElement {
  const effective = host.effectiveVirtType ?? 'none';
  const text = h('span', { class: 'virt-type' }, `${effective} — ${host.virtTypeReason}`);
  if (!canManage) return text;
  const select = h(
    'select',
    {
      'aria-label': 'Virtualization type',
      onchange: async () => {
        try {
          changed(await api<Host>('PATCH', `/api/v1/hosts/${host.id}`, { virtType: select.value }));
        } catch (err) {
          toast((err as Error).message, 'error');
          select.value = host.virtType;
        }
      },
    },
    ...(['auto', 'kvm', 'qemu'] as const).map((v) =>
      h('option', { value: v, selected: v === host.virtType }, v === 'qemu' ? 'qemu (TCG)' : v),
    ),
  );
  return h('span', null, select, ' ', text);
}
