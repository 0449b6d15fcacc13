import { get, getAll } from './api.js';
import { onLive } from './live.js';
import type { Host, HostLiveFigures, Me, Pool, SmartPool, Vm, VmLiveFigures } from './types.js';

/**
 * What the user may see, loaded once after login and kept current by live events: the navigation tree,
 * search and the pages read it from here.
 */
export const state = {
  me: null as Me | null,
  pools: new Map<number, Pool>(),
  hosts: new Map<number, Host>(),
  vms: new Map<number, Vm>(),
  smartPools: [] as SmartPool[],
  hostLive: new Map<number, HostLiveFigures>(),
  vmLive: new Map<number, VmLiveFigures>(),
};

const listeners = new Set<() => void>();
let scheduled = false;

/** Called (at most once a frame) when pools, hosts or VMs change. */
export function onStateChange(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function changed(): void {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    for (const listener of listeners) listener();
  });
}

export async function loadAll(): Promise<void> {
  // A list this user may not read (or this herd does not serve) leaves that part of the tree empty.
  const all = <T>(path: string) => getAll<T>(path).catch(() => [] as T[]);
  const [pools, hosts, vms, smartPools] = await Promise.all([
    all<Pool>('/api/v1/pools'),
    all<Host>('/api/v1/hosts'),
    all<Vm>('/api/v1/vms'),
    all<SmartPool>('/api/v1/smart-pools'),
  ]);
  state.pools = new Map(pools.map((p) => [p.id, p]));
  state.hosts = new Map(hosts.map((h) => [h.id, h]));
  state.vms = new Map(vms.map((v) => [v.id, v]));
  state.smartPools = smartPools;
  changed();
}

export function clearState(): void {
  state.me = null;
  state.pools.clear();
  state.hosts.clear();
  state.vms.clear();
  state.smartPools = [];
  state.hostLive.clear();
  state.vmLive.clear();
}

let subscribed = false;
export function followLive(): void {
  if (subscribed) return;
  subscribed = true;
  onLive('host', (h: Pick<Host, 'id' | 'poolId' | 'hostname' | 'state' | 'enabled'>) => {
    const known = state.hosts.get(h.id);
    if (known) Object.assign(known, h);
    else
      void get<Host>(`/api/v1/hosts/${h.id}`).then(
        (full) => state.hosts.set(full.id, full),
        () => undefined,
      );
    changed();
  });
  onLive('vm', (v: Pick<Vm, 'id' | 'poolId' | 'ownerId' | 'hostId' | 'name' | 'state'>) => {
    if (v.state === 'deleted') state.vms.delete(v.id);
    else {
      const known = state.vms.get(v.id);
      if (known) Object.assign(known, v);
      else
        void get<Vm>(`/api/v1/vms/${v.id}`).then(
          (full) => {
            state.vms.set(full.id, full);
            changed();
          },
          () => undefined,
        );
    }
    changed();
  });
  onLive('metrics', (m: { hosts: Record<string, HostLiveFigures>; vms: Record<string, VmLiveFigures> }) => {
    for (const [id, figures] of Object.entries(m.hosts)) state.hostLive.set(Number(id), figures);
    for (const [id, figures] of Object.entries(m.vms)) state.vmLive.set(Number(id), figures);
  });
}

/** The pool and the pools below it. */
export function subtree(poolId: number): Set<number> {
  const out = new Set([poolId]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of state.pools.values()) {
      if (p.parentId !== null && out.has(p.parentId) && !out.has(p.id)) {
        out.add(p.id);
        grew = true;
      }
    }
  }
  return out;
}

/** The pools from the root to this one (those the user sees). */
export function poolPath(poolId: number): Pool[] {
  const out: Pool[] = [];
  let pool = state.pools.get(poolId);
  while (pool && out.length < 64) {
    out.unshift(pool);
    pool = pool.parentId === null ? undefined : state.pools.get(pool.parentId);
  }
  return out;
}

export function hostName(id: number | null | undefined): string {
  if (id === null || id === undefined) return '–';
  return state.hosts.get(id)?.hostname ?? `host ${id}`;
}
