import type { MetricsStore } from '../../ingest/store/metrics-store.js';
import type { Point } from '../../ingest/types.js';
import type { Logger } from '../../lib/log.js';
import type { Database } from '../../schema/db.js';
import { hostInventory } from '../placement/inventory.js';
import { RESOURCE_KEYS } from '../quota/quota.service.js';
import { type QuotaStatus, quotaStatuses } from '../quota-enforcer/quota-status.js';
import { hardwarePoolIds, type SubtreeHostRow, subtreeHosts, subtreeStorage } from './forecast.repository.js';

/**
 * What VMs hold has no history of its own (the tables say what is held now), so herd samples it into the metrics
 * store, beside the collectd figures, where it is rolled up and kept like them (InfluxDB or PostgreSQL):
 * - `herd_capacity`, tag `pool` (a hardware pool id), per hardware pool over its subtree: `<resource>_allocated`
 *   and `<resource>_capacity` for `vcpus`, `memory_mib` (vCPUs and memory of active VMs against the hosts'
 *   (total − reserved) × allocation ratio) and `storage_gib` (volumes attached to VMs against all volumes of the
 *   pool's storage pools);
 * - `herd_quota`, tags `pool` and `user` (a user id, or `total` for the pool-total row), per quota row:
 *   `used_<resource>` and, where the row limits it, `limit_<resource>` (resources as the quota API names them).
 * Samples are stamped with the start of their sampling interval, so two processes sampling the same interval
 * write the same point (both stores keep one point per series and time).
 */
export const CAPACITY_MEASUREMENT = 'herd_capacity';
export const QUOTA_MEASUREMENT = 'herd_quota';

export const ALLOCATION_RESOURCES = ['vcpus', 'memory_mib', 'storage_gib'] as const;
export type AllocationResource = (typeof ALLOCATION_RESOURCES)[number];

export interface PoolFigures {
  hosts: string[];
  /** Storage pools in the subtree: without any, storage has no capacity. */
  storagePools: number;
  /** CPUs and memory of the hosts (inventory): what use is measured against. */
  cpus: number;
  memoryMiB: number;
  allocated: Record<AllocationResource, number>;
  capacity: Record<AllocationResource, number>;
}

/** A hardware pool's hosts, inventory and allocations now, over its subtree. */
export async function poolFigures(db: Database, poolId: number): Promise<PoolFigures> {
  const [hosts, storage] = await Promise.all([subtreeHosts(db, poolId), subtreeStorage(db, poolId)]);
  const figures: PoolFigures = {
    hosts: hosts.map((h) => h.hostname),
    storagePools: storage.storage_pools,
    cpus: 0,
    memoryMiB: 0,
    allocated: { vcpus: 0, memory_mib: 0, storage_gib: storage.attached_gib },
    capacity: { vcpus: 0, memory_mib: 0, storage_gib: storage.total_gib },
  };
  for (const h of hosts) {
    const inv = hostInventory(inventoryRecord(h));
    figures.cpus += h.cpus;
    figures.memoryMiB += h.memory_mib;
    figures.allocated.vcpus += inv.vcpus.allocated;
    figures.allocated.memory_mib += inv.memoryMiB.allocated;
    figures.capacity.vcpus += inv.vcpus.capacity;
    figures.capacity.memory_mib += inv.memoryMiB.capacity;
  }
  return figures;
}

function inventoryRecord(h: SubtreeHostRow) {
  return {
    cpus: h.cpus,
    memoryMiB: h.memory_mib,
    reservedVcpus: h.reserved_vcpus,
    reservedMemoryMiB: h.reserved_memory_mib,
    cpuAllocationRatio: h.cpu_allocation_ratio,
    ramAllocationRatio: h.ram_allocation_ratio,
    poolCpuAllocationRatio: h.pool_cpu_allocation_ratio,
    poolRamAllocationRatio: h.pool_ram_allocation_ratio,
    allocatedVcpus: h.allocated_vcpus,
    allocatedMemoryMiB: h.allocated_memory_mib,
  };
}

/** The point herd samples for a hardware pool. */
export function capacityPoint(
  poolId: number,
  time: number,
  f: Pick<PoolFigures, 'allocated' | 'capacity'>,
): Point {
  const fields: Record<string, number> = {};
  for (const r of ALLOCATION_RESOURCES) {
    fields[`${r}_allocated`] = f.allocated[r];
    fields[`${r}_capacity`] = f.capacity[r];
  }
  return { measurement: CAPACITY_MEASUREMENT, tags: { pool: String(poolId) }, fields, time };
}

export const quotaUserTag = (userId: number | null) => (userId === null ? 'total' : String(userId));

/** The point herd samples for a quota row. */
export function quotaPoint(
  s: Pick<QuotaStatus, 'poolId' | 'userId' | 'used' | 'limits'>,
  time: number,
): Point {
  const fields: Record<string, number> = {};
  for (const key of RESOURCE_KEYS) {
    fields[`used_${key}`] = s.used[key];
    const limit = s.limits[key];
    if (limit !== null) fields[`limit_${key}`] = limit;
  }
  return {
    measurement: QUOTA_MEASUREMENT,
    tags: { pool: String(s.poolId), user: quotaUserTag(s.userId) },
    fields,
    time,
  };
}

/** Samples every hardware pool's allocations and every quota row's usage each `everySeconds`. */
export class CapacitySampler {
  private timer?: NodeJS.Timeout;
  private running?: Promise<number>;

  constructor(
    private readonly deps: { db: Database; store: Pick<MetricsStore, 'write'>; log: Logger },
    private readonly everySeconds: number,
    private readonly clock: () => number = Date.now,
  ) {}

  start(): void {
    if (this.timer) return;
    const tick = () => {
      this.running ??= this.sample()
        .catch((err) => {
          this.deps.log.warn({ err }, 'capacity sampling failed');
          return 0;
        })
        .finally(() => {
          this.running = undefined;
        });
    };
    this.timer = setInterval(tick, this.everySeconds * 1000);
    this.timer.unref();
    tick();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Writes one sample of everything, stamped with the start of the current interval; answers how many points. */
  async sample(): Promise<number> {
    const { db, store } = this.deps;
    const time = Math.floor(this.clock() / 1000 / this.everySeconds) * this.everySeconds;
    const points: Point[] = [];
    for (const poolId of await hardwarePoolIds(db)) {
      points.push(capacityPoint(poolId, time, await poolFigures(db, poolId)));
    }
    for (const s of await quotaStatuses(db)) points.push(quotaPoint(s, time));
    if (points.length) store.write(points);
    return points.length;
  }
}
