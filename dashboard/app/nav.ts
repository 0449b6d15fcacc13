import { fill, h } from './dom.js';
import { onStateChange, poolPath, state } from './state.js';
import type { Pool } from './types.js';

/** Hosts or VMs listed under a pool in the tree; the pool page has them all. */
const TREE_LIMIT = 25;
const expanded = new Set<number>();

/**
 * The navigation tree: the pools the user may see (hardware pools hold hosts and VM pools, VM pools hold VMs),
 * then the user's smart pools. Pools open and close with their toggle button; each name is a link.
 */
export function navTree(): { el: HTMLElement; dispose(): void } {
  const el = h('nav', { class: 'tree', 'aria-label': 'Pools, hosts and VMs' });
  openToCurrent();
  const draw = () => {
    const pools = [...state.pools.values()];
    const roots = pools.filter((p) => p.parentId === null || !state.pools.has(p.parentId));
    if (expanded.size === 0) for (const r of roots) expanded.add(r.id);
    fill(
      el,
      h('h2', { class: 'tree-title' }, 'Pools'),
      h(
        'ul',
        { role: 'tree' },
        sortByName(roots).map((p) => poolNode(p, pools)),
      ),
      state.smartPools.length > 0 && h('h2', { class: 'tree-title' }, 'Smart pools'),
      state.smartPools.length > 0 &&
        h(
          'ul',
          { role: 'tree' },
          state.smartPools.map((s) =>
            h(
              'li',
              { role: 'treeitem', class: 'smart' },
              h('span', { class: 'node' }, h('span', { class: 'icon' }, '★'), s.name),
              h(
                'ul',
                { role: 'group' },
                (s.members ?? []).map((m) =>
                  h('li', { role: 'treeitem' }, memberLink(m.entityType, m.entityId, m.name)),
                ),
              ),
            ),
          ),
        ),
    );
    markCurrent(el);
  };
  const unsubscribe = onStateChange(draw);
  const onHash = () => (openToCurrent() ? draw() : markCurrent(el));
  window.addEventListener('hashchange', onHash);
  draw();
  return {
    el,
    dispose() {
      unsubscribe();
      window.removeEventListener('hashchange', onHash);
    },
  };
}

function poolNode(pool: Pool, pools: Pool[]): HTMLElement {
  const open = expanded.has(pool.id);
  const children = sortByName(pools.filter((p) => p.parentId === pool.id));
  const hosts = pool.kind === 'hardware' ? [...state.hosts.values()].filter((x) => x.poolId === pool.id) : [];
  const vms = pool.kind === 'vm' ? [...state.vms.values()].filter((x) => x.poolId === pool.id) : [];
  const leaves = [
    ...sortByName(hosts.map((x) => ({ name: x.hostname, id: x.id, state: x.state }))).map((x) => ({
      ...x,
      href: `#/host/${x.id}`,
      kind: 'host',
    })),
    ...sortByName(vms).map((x) => ({
      name: x.name,
      id: x.id,
      state: x.state,
      href: `#/vm/${x.id}`,
      kind: 'vm',
    })),
  ];
  const hasChildren = children.length + leaves.length > 0;
  const toggle = h(
    'button',
    {
      type: 'button',
      class: 'toggle',
      'aria-expanded': String(open),
      'aria-label': `${open ? 'Close' : 'Open'} ${pool.name}`,
      disabled: !hasChildren,
      onclick: () => {
        if (open) expanded.delete(pool.id);
        else expanded.add(pool.id);
        const fresh = poolNode(pool, [...state.pools.values()]);
        item.replaceWith(fresh);
        fresh.querySelector<HTMLButtonElement>('.toggle')?.focus();
      },
    },
    hasChildren ? (open ? '▾' : '▸') : '·',
  );
  const item = h(
    'li',
    { role: 'treeitem', 'aria-expanded': hasChildren ? String(open) : undefined, 'data-pool': pool.id },
    h(
      'span',
      { class: 'node' },
      toggle,
      h(
        'a',
        { href: `#/pool/${pool.id}` },
        h('span', { class: `icon ${pool.kind}`, 'aria-hidden': 'true' }, pool.kind === 'vm' ? '▣' : '▤'),
        h('span', { class: 'name' }, pool.name),
      ),
    ),
    open &&
      hasChildren &&
      h(
        'ul',
        { role: 'group' },
        children.map((c) => poolNode(c, pools)),
        leaves
          .slice(0, TREE_LIMIT)
          .map((leaf) =>
            h(
              'li',
              { role: 'treeitem', class: `leaf ${leaf.kind}` },
              h(
                'a',
                { href: leaf.href },
                h('span', { class: `dot state-${leaf.state}`, title: leaf.state }),
                h('span', { class: 'name' }, leaf.name),
              ),
            ),
          ),
        leaves.length > TREE_LIMIT &&
          h(
            'li',
            { class: 'more' },
            h('a', { href: `#/pool/${pool.id}` }, `${leaves.length - TREE_LIMIT} more…`),
          ),
      ),
  );
  return item;
}

function memberLink(type: string, id: number, name?: string): HTMLElement {
  if (type === 'host')
    return h('a', { href: `#/host/${id}` }, name ?? state.hosts.get(id)?.hostname ?? `host ${id}`);
  if (type === 'vm') return h('a', { href: `#/vm/${id}` }, name ?? state.vms.get(id)?.name ?? `VM ${id}`);
  if (type === 'pool')
    return h('a', { href: `#/pool/${id}` }, name ?? state.pools.get(id)?.name ?? `pool ${id}`);
  return h('span', null, name ?? `${type} ${id}`);
}

/** Opens the pools down to the page's pool, host or VM; answers whether any was closed. */
function openToCurrent(): boolean {
  const [, kind, id] = /^#\/(pool|host|vm)\/(\d+)/.exec(location.hash) ?? [];
  const poolId =
    kind === 'pool'
      ? Number(id)
      : kind === 'host'
        ? state.hosts.get(Number(id))?.poolId
        : state.vms.get(Number(id))?.poolId;
  if (poolId === undefined) return false;
  let opened = false;
  for (const p of poolPath(poolId)) {
    if (kind === 'pool' && p.id === poolId) continue;
    if (!expanded.has(p.id)) opened = true;
    expanded.add(p.id);
  }
  return opened;
}

function markCurrent(el: HTMLElement): void {
  for (const a of el.querySelectorAll('a')) {
    if (a.getAttribute('href') === location.hash) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function sortByName<T extends { name: string }>(items: T[]): T[] {
  return [...items].sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
}

/** Everything the user may see whose name contains the text: pools, hosts, VMs. */
export function searchAll(
  text: string,
): Array<{ kind: string; name: string; href: string; state?: string; detail?: string }> {
  const q = text.trim().toLowerCase();
  if (!q) return [];
  const out: Array<{ kind: string; name: string; href: string; state?: string; detail?: string }> = [];
  for (const p of state.pools.values())
    if (p.name.toLowerCase().includes(q))
      out.push({ kind: `${p.kind} pool`, name: p.name, href: `#/pool/${p.id}` });
  for (const x of state.hosts.values()) {
    if (x.hostname.toLowerCase().includes(q))
      out.push({
        kind: 'host',
        name: x.hostname,
        href: `#/host/${x.id}`,
        state: x.state,
        detail: state.pools.get(x.poolId)?.name,
      });
  }
  for (const v of state.vms.values()) {
    if (v.name.toLowerCase().includes(q))
      out.push({
        kind: 'VM',
        name: v.name,
        href: `#/vm/${v.id}`,
        state: v.state,
        detail: state.pools.get(v.poolId)?.name,
      });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
}
