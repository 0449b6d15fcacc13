import { ApiError, api, get } from '../api.js';
import { badge, fill, h, meter, toast } from '../dom.js';
import { ago, bytes, mib, percent } from '../format.js';
import { graphPanel } from '../graph.js';
import { onLive } from '../live.js';
import type { Page } from '../page.js';
import { hostName, state } from '../state.js';
import { dataTable } from '../table.js';
import { type Task, VM_ACTIONS, type Vm } from '../types.js';
import { breadcrumbs, facts, taskState, tasksPanel, VM_METRICS } from './common.js';
import { CONSOLE_STATES } from './console.js';
import { eventsPanel } from './events.js';
import { type Item, limitsPanel } from './limits.js';

/** A VM: state, host, resources, volumes, collectd notifications, the actions its state allows, the task running, graphs. */
export const vmPage: Page = async (main, [id]) => {
  const vmId = Number(id);
  let vm = await get<Vm>(`/api/v1/vms/${vmId}`);
  let watching: number | undefined;
  let poll: number | undefined;
  const head = h('div', { class: 'head' });
  const actions = h('div', { class: 'actions', role: 'group', 'aria-label': 'Actions' });
  const progress = h('div', { class: 'task-progress', 'aria-live': 'polite' });
  const about = h('div');
  const live = h('div', { class: 'live-figures' });
  const volumes = dataTable<NonNullable<Vm['volumes']>[number]>({
    label: 'Volumes',
    empty: 'No volumes.',
    columns: [
      { title: 'Volume', value: (v) => v.name },
      { title: 'Size', value: (v) => v.sizeGiB, render: (v) => `${v.sizeGiB} GiB`, numeric: true },
      { title: 'Path', value: (v) => v.path ?? null, secondary: true },
    ],
  });
  const tasks = tasksPanel({ targetType: 'vm', targetId: vmId });
  const graphs = graphPanel(`vm:${vmId}`, VM_METRICS);
  const events = eventsPanel({ vmId });
  const role = state.pools.get(vm.poolId)?.role;
  const limits = limitsPanel({
    kind: 'vm',
    item: vm as unknown as Item,
    // Who may change the VM: its pool's admins, and its owner.
    editable:
      !!state.me &&
      (state.me.isSuperAdmin || role === 'admin' || role === 'super' || vm.ownerId === state.me.id),
    saved: (fresh) => {
      vm = fresh as unknown as Vm;
      draw();
    },
  });

  const draw = () => {
    fill(head, h('h1', null, vm.name, ' ', h('span', { class: 'vm-state' }, badge(vm.state))));
    fill(
      about,
      facts([
        ['State', badge(vm.state)],
        ['Host', vm.hostId === null ? 'none' : h('a', { href: `#/host/${vm.hostId}` }, hostName(vm.hostId))],
        [
          'Pool',
          h('a', { href: `#/pool/${vm.poolId}` }, state.pools.get(vm.poolId)?.name ?? `pool ${vm.poolId}`),
        ],
        ['vCPUs', vm.vcpus],
        ['CPU limit', cpuLimit(vm)],
        ['Memory', mib(vm.memoryMiB)],
        ['Install image', vm.image ? `${vm.image.name} (${vm.image.kind})` : null],
        ['NICs', (vm.nics ?? []).map((n) => `${n.mac} on ${n.network}`).join(', ') || null],
        ['UUID', vm.uuid],
        ['State since', ago(vm.stateChangedAt)],
      ]),
    );
    volumes.setRows(vm.volumes ?? []);
    fill(
      actions,
      Object.entries(VM_ACTIONS)
        .filter(([, a]) => a.from.includes(vm.state))
        .map(([name, a]) =>
          h(
            'button',
            {
              type: 'button',
              class: name === 'delete' || name === 'destroy' ? 'danger' : '',
              'data-action': name,
              onclick: () => act(name),
            },
            a.label,
          ),
        ),
      CONSOLE_STATES.includes(vm.state) &&
        h(
          'button',
          {
            type: 'button',
            'data-action': 'console',
            onclick: () => {
              location.hash = `#/vm/${vmId}/console`;
            },
          },
          'Console',
        ),
      watching === undefined &&
        Object.values(VM_ACTIONS).every((a) => !a.from.includes(vm.state)) &&
        h('span', { class: 'muted' }, 'No action possible while the VM is ', vm.state, '.'),
    );
  };

  const drawLive = () => {
    const fig = state.vmLive.get(vmId);
    fill(
      live,
      h(
        'div',
        { class: 'bar-line' },
        h('span', { class: 'bar-title' }, 'CPU'),
        meter(fig?.cpu ?? null, 100, percent(fig?.cpu)),
      ),
      h(
        'p',
        null,
        `Memory: ${mib(fig?.memoryMiB ?? null)} · Network: ${bytes(fig?.netBytesPerSec, 'B/s')} · Disk: ${bytes(fig?.diskBytesPerSec, 'B/s')}`,
      ),
    );
  };

  async function act(action: string): Promise<void> {
    try {
      if (action === 'delete') {
        if (!confirm(`Delete ${vm.name}? Its volumes are kept.`)) return;
        const answer = await api<{ taskId?: number } | undefined>('DELETE', `/api/v1/vms/${vmId}`);
        if (answer?.taskId) follow(answer.taskId);
        return;
      }
      let hostId: number | undefined;
      if (action === 'migrate') {
        const chosen = await pickHost(vm);
        if (chosen === null) return;
        hostId = chosen;
      }
      const answer = await api<{ taskId: number }>(
        'POST',
        `/api/v1/vms/${vmId}/actions`,
        hostId === undefined ? { action } : { action, hostId },
      );
      follow(answer.taskId);
    } catch (err) {
      toast(err instanceof ApiError ? err.message : 'The action could not be sent.', 'error');
    }
  }

  function follow(taskId: number): void {
    watching = taskId;
    fill(progress, `Task ${taskId}: `, taskState({ state: 'queued' }));
    window.clearInterval(poll);
    // Live events normally carry the task; polling covers a lost socket.
    poll = window.setInterval(
      () => void get<Task>(`/api/v1/tasks/${taskId}`).then(showTask, () => undefined),
      3000,
    );
  }

  function showTask(t: Task): void {
    if (t.id !== watching) return;
    fill(progress, `${t.action || 'Task'} (task ${t.id}): `, taskState(t));
    if (t.state !== 'queued' && t.state !== 'running') {
      window.clearInterval(poll);
      watching = undefined;
      void get<Vm>(`/api/v1/vms/${vmId}`).then((fresh) => {
        vm = fresh;
        draw();
        limits.update(vm as unknown as Item);
      });
    }
  }

  fill(
    main,
    breadcrumbs(vm.poolId, vm.name),
    head,
    actions,
    progress,
    h(
      'div',
      { class: 'two' },
      h('section', { class: 'card' }, h('h2', null, 'About'), about),
      h('section', { class: 'card' }, h('h2', null, 'Now'), live),
    ),
    h('section', { class: 'card' }, h('h2', null, 'Volumes'), volumes.el),
    limits.el,
    events.el,
    tasks.el,
    h('section', { class: 'card' }, h('h2', null, 'Graphs'), graphs.el),
  );
  draw();
  drawLive();
  const offVm = onLive('vm', (v: Partial<Vm> & { id: number }) => {
    if (v.id !== vmId) return;
    if (v.state === 'deleted') {
      fill(
        main,
        h('h1', null, vm.name),
        h('p', null, 'This VM was deleted. ', h('a', { href: `#/pool/${vm.poolId}` }, 'Back to its pool')),
      );
      return;
    }
    vm = { ...vm, ...v };
    draw();
  });
  const offTask = onLive('task', (t: Task) => showTask(t));
  const offMetrics = onLive('metrics', drawLive);
  return () => {
    offVm();
    offTask();
    offMetrics();
    window.clearInterval(poll);
    tasks.dispose();
    graphs.dispose();
    events.dispose();
  };
};

/** A dialog listing the hosts the VM could move to; undefined: let placement choose; null: cancelled. */
function pickHost(vm: Vm): Promise<number | undefined | null> {
  const candidates = [...state.hosts.values()]
    .filter((x) => x.enabled && x.state === 'up' && x.id !== vm.hostId)
    .sort((a, b) => a.hostname.localeCompare(b.hostname, undefined, { numeric: true }));
  const select = h(
    'select',
    { 'aria-label': 'Destination host' },
    h('option', { value: '' }, 'Let placement choose'),
    candidates.map((x) =>
      h('option', { value: x.id }, `${x.hostname} (${x.cpus} CPUs, ${mib(x.memoryMiB)})`),
    ),
  );
  const dialog = h(
    'dialog',
    { class: 'card' },
    h(
      'form',
      { method: 'dialog' },
      h('h2', null, `Migrate ${vm.name}`),
      h('label', null, 'To ', select),
      h(
        'div',
        { class: 'actions' },
        h('button', { value: 'cancel', type: 'submit' }, 'Cancel'),
        h('button', { value: 'ok', type: 'submit', class: 'primary' }, 'Migrate'),
      ),
    ),
  );
  document.body.append(dialog);
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      dialog.remove();
      if (dialog.returnValue !== 'ok') resolve(null);
      else resolve(select.value ? Number(select.value) : undefined);
    });
  });
}

/** The CPU hard limit applied, and where it comes from when the VM pool's is the lower one. */
function cpuLimit(vm: Vm): string {
  const applied = vm.effectiveCpuLimitPercent;
  if (applied == null) return 'none';
  const own = vm.cpuLimitPercent;
  const origin =
    own === applied ? '' : own == null ? " (the VM pool's)" : ` (the VM pool's; its own: ${own} %)`;
  return `${applied} % of each vCPU${origin}`;
}
