import type { HostLiveSummary } from '../../ingest/live-view.js';
import { Gauge, Registry } from '../../lib/metrics.js';
import type { Database } from '../../schema/db.js';
import { visiblePoolRoles, vmVisibilityFilter } from '../access/access.service.js';
import type { AuthUser } from '../auth/auth-user.js';
import { LIVE_MAX_AGE_INTERVALS, type LiveSummarySource } from '../placement/live-usage.js';
import { RESOURCE_KEYS, type ResourceKey } from '../quota/quota.service.js';
import { quotaStatuses } from '../quota-enforcer/quota-status.js';
import { ACTIVE_VM_STATES } from '../vms/vm-states.js';
import {
  type FleetHostRow,
  type FleetPoolRow,
  type FleetVmRow,
  fleetHosts,
  fleetPools,
  fleetVms,
  usernames,
} from './fleet-metrics.repository.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** Quota resources as series label values, in Prometheus' base units (bytes), with the factor from herd's unit. */
const QUOTA_RESOURCES: Record<ResourceKey, { label: string; factor: number }> = {
  vcpus: { label: 'vcpus', factor: 1 },
  memoryMiB: { label: 'memory_bytes', factor: MiB },
  storageGiB: { label: 'storage_bytes', factor: GiB },
  nics: { label: 'nics', factor: 1 },
  vms: { label: 'vms', factor: 1 },
};

const HOST_LABELS = ['host', 'host_id', 'pool', 'pool_id'] as const;
const VM_LABELS = ['vm', 'vm_id', 'pool', 'pool_id', 'host', 'owner'] as const;
const POOL_LABELS = ['pool', 'pool_id', 'kind'] as const;
const QUOTA_LABELS = ['pool', 'pool_id', 'scope', 'user', 'resource'] as const;

export interface FleetMetricsDeps {
  db: Database;
  /** Ingest's live view; absent in a process without the ingest role (then no live series). */
  liveView?: LiveSummarySource;
  now?: () => number;
}

/**
 * The fleet as Prometheus series, computed from PostgreSQL (and the live view) for this one scrape, over what
 * the caller may view: every host of the pools it sees, the VMs it sees, those pools' totals over their
 * subtrees, and their quota rows (a pool `user` sees its own quota rows and the pool totals only).
 * A registry of its own per scrape, so nothing of a former scrape (a deleted VM) lingers.
 */
export async function fleetMetrics(deps: FleetMetricsDeps, user: AuthUser): Promise<Registry> {
  const { db } = deps;
  const roles = await visiblePoolRoles(db, user);
  const scope = roles === 'all' ? 'all' : [...roles.keys()];
  const [pools, hosts, vms, quotas] = await Promise.all([
    fleetPools(db, scope),
    fleetHosts(db, scope),
    fleetVms(db, await vmVisibilityFilter(db, user)),
    quotaStatuses(db, scope === 'all' ? undefined : scope),
  ]);
  const visibleQuotas = quotas.filter(
    (q) => roles === 'all' || q.userId === null || roles.get(q.poolId) !== 'user' || q.userId === user.id,
  );
  const names = await usernames(db, [
    ...new Set(visibleQuotas.flatMap((q) => (q.userId === null ? [] : [q.userId]))),
  ]);

  const registry = new Registry();
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    new Gauge<L>({ name, help, labelNames: [...labelNames], registers: [registry] });
  const poolById = new Map(pools.map((p) => [p.id, p]));
  const poolName = (id: number) => poolById.get(id)?.name ?? '';

  writeHosts(gauge, hosts, poolName, deps);
  writeVms(gauge, vms, poolName);
  writePools(gauge, pools, hosts, vms);

  const used = gauge('herd_quota_used', 'usage counted against a quota row, per resource', QUOTA_LABELS);
  const limit = gauge(
    'herd_quota_limit',
    'limit of a quota row per resource (absent: unlimited)',
    QUOTA_LABELS,
  );
  for (const q of visibleQuotas) {
    for (const key of RESOURCE_KEYS) {
      const { label, factor } = QUOTA_RESOURCES[key];
      const labels = {
        pool: poolName(q.poolId),
        pool_id: String(q.poolId),
        scope: q.userId === null ? 'pool' : 'user',
        user: q.userId === null ? '' : (names.get(q.userId) ?? String(q.userId)),
        resource: label,
      };
      used.set(labels, q.used[key] * factor);
      const max = q.limits[key];
      if (max !== null) limit.set(labels, max * factor);
    }
  }
  return registry;
}

type GaugeMaker = <L extends string>(name: string, help: string, labelNames: readonly L[]) => Gauge<L>;

function writeHosts(
  gauge: GaugeMaker,
  hosts: FleetHostRow[],
  poolName: (id: number) => string,
  deps: FleetMetricsDeps,
): void {
  const up = gauge('herd_host_up', 'host state is up (libvirt answers): 1, else 0', HOST_LABELS);
  const enabled = gauge('herd_host_enabled', 'host is enabled for placement: 1, else 0', HOST_LABELS);
  const cpus = gauge('herd_host_cpus', 'CPUs of the host', HOST_LABELS);
  const memory = gauge('herd_host_memory_bytes', 'memory of the host', HOST_LABELS);
  const vcpus = gauge('herd_host_allocated_vcpus', 'vCPUs held by active VMs on the host', HOST_LABELS);
  const allocatedMemory = gauge(
    'herd_host_allocated_memory_bytes',
    'memory held by active VMs on the host',
    HOST_LABELS,
  );
  const live = {
    load1: gauge('herd_host_load1', 'collectd: 1-minute load average', HOST_LABELS),
    load5: gauge('herd_host_load5', 'collectd: 5-minute load average', HOST_LABELS),
    load15: gauge('herd_host_load15', 'collectd: 15-minute load average', HOST_LABELS),
    cpuBusy: gauge('herd_host_cpu_busy_ratio', 'collectd: busy share of all CPUs, 0-1', HOST_LABELS),
    memoryUsed: gauge('herd_host_memory_used_bytes', 'collectd: memory used', HOST_LABELS),
    memoryFree: gauge('herd_host_memory_free_bytes', 'collectd: memory free', HOST_LABELS),
    lastSeen: gauge(
      'herd_host_collectd_last_seen_seconds',
      'arrival of the last collectd packet of the host (seconds since the epoch)',
      HOST_LABELS,
    ),
  };
  const now = deps.now ?? Date.now;
  for (const h of hosts) {
    const labels = {
      host: h.hostname,
      host_id: String(h.id),
      pool: poolName(h.pool_id),
      pool_id: String(h.pool_id),
    };
    up.set(labels, h.state === 'up' ? 1 : 0);
    enabled.set(labels, h.enabled ? 1 : 0);
    cpus.set(labels, h.cpus);
    memory.set(labels, h.memory_mib * MiB);
    vcpus.set(labels, h.allocated_vcpus);
    allocatedMemory.set(labels, h.allocated_memory_mib * MiB);
    const s: HostLiveSummary | undefined = deps.liveView?.hostSummary(h.hostname);
    if (!s) continue;
    live.lastSeen.set(labels, s.lastSeen / 1000);
    // Figures older than a few intervals are not the host's now: leave them out rather than repeat them.
    if (now() - s.lastSeen > LIVE_MAX_AGE_INTERVALS * Math.max(s.interval, 1) * 1000) continue;
    if (s.load1 !== undefined) live.load1.set(labels, s.load1);
    if (s.load5 !== undefined) live.load5.set(labels, s.load5);
    if (s.load15 !== undefined) live.load15.set(labels, s.load15);
    if (s.cpuBusyPercent !== undefined) live.cpuBusy.set(labels, s.cpuBusyPercent / 100);
    if (s.memoryUsedMiB !== undefined) live.memoryUsed.set(labels, s.memoryUsedMiB * MiB);
    if (s.memoryFreeMiB !== undefined) live.memoryFree.set(labels, s.memoryFreeMiB * MiB);
  }
}

function writeVms(gauge: GaugeMaker, vms: FleetVmRow[], poolName: (id: number) => string): void {
  const state = gauge('herd_vm_state', 'the VM is in the state of the `state` label (always 1)', [
    ...VM_LABELS,
    'state',
  ]);
  const running = gauge('herd_vm_running', 'VM state is running: 1, else 0', VM_LABELS);
  const vcpus = gauge('herd_vm_vcpus', 'vCPUs of the VM', VM_LABELS);
  const memory = gauge('herd_vm_memory_bytes', 'memory of the VM', VM_LABELS);
  for (const vm of vms) {
    const labels = {
      vm: vm.name,
      vm_id: String(vm.id),
      pool: poolName(vm.pool_id),
      pool_id: String(vm.pool_id),
      host: vm.hostname ?? '',
      owner: vm.owner,
    };
    state.set({ ...labels, state: vm.state }, 1);
    running.set(labels, vm.state === 'running' ? 1 : 0);
    vcpus.set(labels, vm.vcpus);
    memory.set(labels, vm.memory_mib * MiB);
  }
}

/** Per pool, sums over its subtree (the pool and every pool below it), as the dashboard's pool pages show. */
function writePools(
  gauge: GaugeMaker,
  pools: FleetPoolRow[],
  hosts: FleetHostRow[],
  vms: FleetVmRow[],
): void {
  const series = {
    hosts: gauge('herd_pool_hosts', 'hosts in the pool and below', POOL_LABELS),
    hostsUp: gauge('herd_pool_hosts_up', 'hosts up in the pool and below', POOL_LABELS),
    cpus: gauge('herd_pool_cpus', 'CPUs of the hosts in the pool and below', POOL_LABELS),
    memory: gauge('herd_pool_memory_bytes', 'memory of the hosts in the pool and below', POOL_LABELS),
    allocatedVcpus: gauge(
      'herd_pool_allocated_vcpus',
      'vCPUs held by active VMs on the hosts in the pool and below',
      POOL_LABELS,
    ),
    allocatedMemory: gauge(
      'herd_pool_allocated_memory_bytes',
      'memory held by active VMs on the hosts in the pool and below',
      POOL_LABELS,
    ),
    vms: gauge('herd_pool_vms', 'VMs (any state) in the pool and below', POOL_LABELS),
    activeVms: gauge(
      'herd_pool_active_vms',
      'VMs holding resources (running, paused…) in the pool and below',
      POOL_LABELS,
    ),
    activeVcpus: gauge('herd_pool_active_vcpus', 'vCPUs of active VMs in the pool and below', POOL_LABELS),
    activeMemory: gauge(
      'herd_pool_active_memory_bytes',
      'memory of active VMs in the pool and below',
      POOL_LABELS,
    ),
  };
  type Totals = Record<keyof typeof series, number>;
  const direct = new Map<number, Totals>();
  const totalsOf = (id: number): Totals => {
    let t = direct.get(id);
    if (!t) {
      t = {
        hosts: 0,
        hostsUp: 0,
        cpus: 0,
        memory: 0,
        allocatedVcpus: 0,
        allocatedMemory: 0,
        vms: 0,
        activeVms: 0,
        activeVcpus: 0,
        activeMemory: 0,
      };
      direct.set(id, t);
    }
    return t;
  };
  for (const h of hosts) {
    const t = totalsOf(h.pool_id);
    t.hosts++;
    if (h.state === 'up') t.hostsUp++;
    t.cpus += h.cpus;
    t.memory += h.memory_mib * MiB;
    t.allocatedVcpus += h.allocated_vcpus;
    t.allocatedMemory += h.allocated_memory_mib * MiB;
  }
  const active = new Set<string>(ACTIVE_VM_STATES);
  for (const vm of vms) {
    const t = totalsOf(vm.pool_id);
    t.vms++;
    if (!active.has(vm.state)) continue;
    t.activeVms++;
    t.activeVcpus += vm.vcpus;
    t.activeMemory += vm.memory_mib * MiB;
  }
  const children = new Map<number, number[]>();
  for (const p of pools) {
    if (p.parent_id === null) continue;
    children.set(p.parent_id, [...(children.get(p.parent_id) ?? []), p.id]);
  }
  const subtree = new Map<number, Totals>();
  const sum = (id: number, seen: Set<number>): Totals => {
    const done = subtree.get(id);
    if (done) return done;
    const t = { ...totalsOf(id) };
    seen.add(id);
    for (const child of children.get(id) ?? []) {
      if (seen.has(child)) continue;
      const c = sum(child, seen);
      for (const key of Object.keys(t) as Array<keyof Totals>) t[key] += c[key];
    }
    subtree.set(id, t);
    return t;
  };
  for (const p of pools) {
    const t = sum(p.id, new Set());
    const labels = { pool: p.name, pool_id: String(p.id), kind: p.kind };
    for (const key of Object.keys(series) as Array<keyof Totals>) series[key].set(labels, t[key]);
  }
}
