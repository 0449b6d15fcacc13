import { get } from '../api.js';
import { badge, fill, h } from '../dom.js';
import { ago } from '../format.js';
import { onLive } from '../live.js';
import { state } from '../state.js';
import { facts } from './common.js';

interface Enforcement {
  policy: 'alert' | 'block' | 'suspend-newest';
  graceSeconds: number;
  overQuota: boolean;
  blocked: boolean;
  quotas: Array<{
    poolId: number;
    username: string | null;
    over: Record<string, { used: number; limit: number }>;
    overSince: string;
    graceEndsAt: string;
    action: string;
    blocked: boolean;
    reason: string;
  }>;
  actions: Array<{
    at: string;
    action: string;
    username: string | null;
    vmName: string | null;
    reason: string;
  }>;
}

/** A pool's quota enforcement: whether it is over quota, what herd did about it and why. */
export function enforcementPanel(poolId: number): { el: HTMLElement; dispose(): void } {
  const body = h('div');
  const el = h('section', { class: 'card enforcement' }, h('h2', null, 'Quota enforcement'), body);
  let timer: number | undefined;
  const load = async () => {
    const e = await get<Enforcement>(`/api/v1/pools/${poolId}/enforcement`).catch(() => null);
    if (!e) {
      fill(body, h('p', { class: 'muted' }, 'Not available.'));
      return;
    }
    fill(
      body,
      facts([
        ['Policy', `${e.policy} (grace ${e.graceSeconds} s)`],
        ['Over quota', badge(e.overQuota ? 'over-quota' : 'within-quota')],
        ['Starts blocked', e.blocked ? 'yes' : 'no'],
      ]),
      e.quotas.length > 0 &&
        h(
          'ul',
          { class: 'quota-breaches' },
          e.quotas.map((q) =>
            h(
              'li',
              null,
              `${q.username ?? 'pool total'}${q.poolId !== poolId ? ` in ${state.pools.get(q.poolId)?.name ?? `pool ${q.poolId}`}` : ''}: `,
              Object.entries(q.over)
                .map(([k, f]) => `${k} ${f.used} of ${f.limit}`)
                .join(', '),
              ` — over since ${ago(q.overSince)}; action: `,
              h('strong', null, q.action),
              ` — ${q.reason}`,
            ),
          ),
        ),
      e.actions.length > 0 && [
        h('h3', null, 'Recent actions'),
        h(
          'ul',
          { class: 'quota-actions' },
          e.actions
            .slice(0, 10)
            .map((a) =>
              h(
                'li',
                null,
                `${ago(a.at)}: `,
                h('strong', null, a.action),
                a.username ? ` (${a.username}${a.vmName ? `, ${a.vmName}` : ''})` : '',
                ` — ${a.reason}`,
              ),
            ),
        ),
      ],
    );
  };
  // Enforcement decisions come with alerts (quota rules) and tasks (suspensions): refresh on either.
  const refresh = () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => void load(), 300);
  };
  const offs = [onLive('alert', refresh), onLive('task', refresh)];
  void load();
  return {
    el,
    dispose() {
      for (const off of offs) off();
      window.clearTimeout(timer);
    },
  };
}
