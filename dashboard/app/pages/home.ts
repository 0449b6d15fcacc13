import { fill, h } from '../dom.js';
import type { Page } from '../page.js';
import { onStateChange, state, subtree } from '../state.js';
import { RUNNING_STATES } from '../types.js';

/** The overview: every pool the user may see, with its hosts and VMs counted. */
export const homePage: Page = (main) => {
  const grid = h('div', { class: 'pool-grid' });
  const draw = () => {
    const pools = [...state.pools.values()].sort((a, b) =>
      a.name.localeCompare(b.name, undefined, { numeric: true }),
    );
    const hosts = [...state.hosts.values()];
    const vms = [...state.vms.values()];
    fill(
      grid,
      pools.length === 0
        ? h('p', { class: 'empty' }, 'You may not see any pool yet: ask an administrator for a role on one.')
        : pools.map((p) => {
            const tree = subtree(p.id);
            const poolHosts = hosts.filter((x) => tree.has(x.poolId));
            const poolVms = vms.filter((v) => tree.has(v.poolId));
            return h(
              'a',
              { class: 'pool-card card', href: `#/pool/${p.id}` },
              h('h2', null, p.name),
              h('p', { class: 'muted' }, `${p.kind} pool`, p.role ? ` · ${p.role}` : ''),
              p.kind === 'hardware' &&
                h(
                  'p',
                  null,
                  `${poolHosts.filter((x) => x.state === 'up').length} of ${poolHosts.length} hosts up`,
                ),
              h(
                'p',
                null,
                `${poolVms.filter((v) => RUNNING_STATES.has(v.state)).length} of ${poolVms.length} VMs running`,
              ),
            );
          }),
    );
  };
  fill(
    main,
    h('h1', null, 'Overview'),
    h(
      'p',
      { class: 'muted' },
      `${state.hosts.size} hosts and ${state.vms.size} VMs in ${state.pools.size} pools you may see.`,
    ),
    grid,
  );
  draw();
  return onStateChange(draw);
};
