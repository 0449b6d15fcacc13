import { api, get } from '../api.js';
import { fill, h, toast } from '../dom.js';
import { form } from '../forms.js';
import { onLive } from '../live.js';
import { state } from '../state.js';
import { facts } from './common.js';

interface Settings {
  mode: 'off' | 'recommend' | 'automatic';
  policy: 'balance' | 'pack';
  windowSeconds: number;
  highCpuPercent: number;
  coolDownSeconds: number;
  maxConcurrentMigrations: number;
}

interface Plan {
  mode: Settings['mode'];
  policy: Settings['policy'];
  imbalance: number;
  imbalanceAfter: number;
  recommendations: Array<{ vmId: number; fromHostId: number; toHostId: number; reason: string }>;
  emptyHosts: Array<{ hostId: number; reason: string }>;
  notes: string[];
  migrationsInFlight: number;
}

interface MoveEvent {
  poolId: number;
  vmId: number;
  taskId: number;
  reason: string;
  automatic: boolean;
}

const hostName = (id: number) => state.hosts.get(id)?.hostname ?? `host ${id}`;

/**
 * A hardware pool's balancer, for its admins (docs/balancer.md): the settings (shown and changed), the plan now —
 * each move with its reason and, in mode recommend, an "apply" button — the hosts pack leaves "empty, can power
 * off", and the moves made, as the live feed reports them.
 */
export function balancerPanel(poolId: number): { el: HTMLElement; dispose(): void } {
  const summary = h('div');
  const planEl = h('div', { class: 'balance-plan' });
  const moves = h('ul', { class: 'balance-moves' });
  let settings: Settings | undefined;
  const settingsForm = form({
    title: 'Balancer settings',
    submitLabel: 'Save',
    fields: [
      {
        name: 'mode',
        label: 'Mode',
        type: 'select',
        options: [
          ['', '(unchanged)'],
          ['off', 'off'],
          ['recommend', 'recommend'],
          ['automatic', 'automatic'],
        ],
      },
      {
        name: 'policy',
        label: 'Policy',
        type: 'select',
        options: [
          ['', '(unchanged)'],
          ['balance', 'balance'],
          ['pack', 'pack (power saving)'],
        ],
      },
      { name: 'highCpuPercent', label: 'Hot host: CPU at or over (%)', type: 'number' },
      { name: 'windowSeconds', label: 'for (seconds)', type: 'number' },
      { name: 'coolDownSeconds', label: 'A VM moved stays put (seconds)', type: 'number' },
      { name: 'maxConcurrentMigrations', label: 'Migrations at a time', type: 'number' },
    ],
    async submit(values) {
      await api('PATCH', `/api/v1/pools/${poolId}`, { balancer: values });
      await load();
    },
  });
  const el = h(
    'section',
    { class: 'card balancer' },
    h('h2', null, 'Balancer'),
    summary,
    planEl,
    h('h3', null, 'Moves made'),
    moves,
    settingsForm,
  );

  const apply = async (vmId: number, button: HTMLButtonElement) => {
    button.disabled = true;
    try {
      const res = await api<{ taskId: number }>('POST', `/api/v1/pools/${poolId}/balance/apply`, { vmId });
      toast(`Migration started (task ${res.taskId})`);
    } catch (err) {
      toast((err as Error).message, 'error');
      button.disabled = false;
    }
    await load();
  };

  async function load() {
    const pool = await get<{ balancer: Settings | null }>(`/api/v1/pools/${poolId}`).catch(() => null);
    settings = pool?.balancer ?? undefined;
    const plan = await get<Plan>(`/api/v1/pools/${poolId}/balance`).catch(() => null);
    if (!settings || !plan) {
      fill(summary, h('p', { class: 'muted' }, 'Not available.'));
      fill(planEl);
      return;
    }
    fill(
      summary,
      facts([
        ['Mode', settings.mode],
        ['Policy', settings.policy],
        ['Hot host', `CPU ≥ ${settings.highCpuPercent} % for ${settings.windowSeconds} s`],
        ['Cool-down', `${settings.coolDownSeconds} s`],
        [
          'Migrations at a time',
          `${settings.maxConcurrentMigrations} (${plan.migrationsInFlight} in flight)`,
        ],
        [
          'Imbalance',
          `${plan.imbalance.toFixed(2)} → ${plan.imbalanceAfter.toFixed(2)} after the moves below`,
        ],
      ]),
    );
    const title =
      plan.mode === 'automatic'
        ? 'Moves being made'
        : plan.mode === 'recommend'
          ? 'Recommended moves'
          : 'Dry run (balancer off): what it would recommend';
    fill(
      planEl,
      h('h3', null, title),
      plan.recommendations.length === 0
        ? h('p', { class: 'muted' }, 'No move now.')
        : h(
            'ul',
            { class: 'balance-recommendations' },
            plan.recommendations.map((r) => {
              const button = h('button', { type: 'button', class: 'apply' }, 'Apply') as HTMLButtonElement;
              button.addEventListener('click', () => void apply(r.vmId, button));
              return h(
                'li',
                { 'data-vm-id': String(r.vmId) },
                h('span', { class: 'reason' }, r.reason),
                plan.mode === 'recommend' && [' ', button],
              );
            }),
          ),
      plan.emptyHosts.length > 0 &&
        h(
          'ul',
          { class: 'balance-empty-hosts' },
          plan.emptyHosts.map((e) =>
            h(
              'li',
              { 'data-host-id': String(e.hostId) },
              h('strong', null, hostName(e.hostId)),
              `: ${e.reason}`,
            ),
          ),
        ),
      plan.notes.length > 0 &&
        h(
          'ul',
          { class: 'balance-notes muted' },
          plan.notes.map((n) => h('li', null, n)),
        ),
    );
  }

  const offMove = onLive('balancer', (e: MoveEvent) => {
    if (e.poolId !== poolId) return;
    moves.prepend(h('li', null, `${e.automatic ? '' : 'applied: '}${e.reason} (task ${e.taskId})`));
    void load();
  });
  void load();
  return { el, dispose: offMove };
}
