import type { Transaction } from 'kysely';
import type { Database, DB } from '../../schema/db.js';
import { HttpError, notFound } from '../http/errors.js';
import { isActive } from '../vms/vm-states.js';
import {
  ancestorChain,
  claimQuota,
  everything,
  hostCapacity,
  type QuotaRefusal,
  type QuotaRow,
  quotaRows,
  subtreeUsageByOwner,
  type UsageRow,
  usernames,
} from './quota.repository.js';

/**
 * The quota engine. Semantics (docs/quotas.md, "Quota semantics"):
 * - every quota row limits the usage in the subtree of its pool: a per-user row that user's VMs there, the
 *   pool-total row (user_id NULL) all VMs there;
 * - a claim in pool P is checked against the rows on P and on every ancestor of P, so a pool without its own
 *   quota is bound by its nearest ancestor's (and those above it), and a quota lower down can only narrow;
 * - storage counts for every VM in any state, vCPUs/memory/NICs/VM count only for ACTIVE_VM_STATES;
 * - usage is counted from the tables at the moment of the claim, after taking the locks, never kept as counters.
 */
export type Resources = { vcpus: number; memoryMiB: number; storageGiB: number; nics: number; vms: number };
export type ResourceKey = keyof Resources;
export const RESOURCE_KEYS: readonly ResourceKey[] = ['vcpus', 'memoryMiB', 'storageGiB', 'nics', 'vms'];

/** The names quota refusals use (CONTRACT.md). */
export const RESOURCE_NAMES = {
  vcpus: 'vcpus',
  memoryMiB: 'memory',
  storageGiB: 'storage',
  nics: 'nics',
  vms: 'vms',
} as const satisfies Record<ResourceKey, string>;
const UNITS: Record<ResourceKey, string> = {
  vcpus: '',
  memoryMiB: ' MiB',
  storageGiB: ' GiB',
  nics: '',
  vms: '',
};
const COLUMNS = {
  vcpus: 'vcpus',
  memoryMiB: 'memory_mib',
  storageGiB: 'storage_gib',
  nics: 'nics',
  vms: 'vms',
} as const satisfies Record<ResourceKey, keyof QuotaRow & keyof UsageRow>;

export type QuotaScope = 'user' | 'pool';

/** 409 `quota_exceeded`, naming the resource, the limit, the usage, the request and whose quota it is. */
export class QuotaExceededError extends HttpError {
  constructor(d: {
    resource: ResourceKey;
    limit: number;
    used: number;
    requested: number;
    scope: QuotaScope;
    poolId: number;
    userId?: number;
  }) {
    const name = RESOURCE_NAMES[d.resource];
    const unit = UNITS[d.resource];
    const whose = d.scope === 'user' ? `user ${d.userId}'s quota` : 'the pool total quota';
    super(
      409,
      'quota_exceeded',
      `${name}: ${d.used}${unit} used + ${d.requested}${unit} requested exceeds ${whose} of ${d.limit}${unit} on pool ${d.poolId}`,
      {
        resource: name,
        limit: d.limit,
        used: d.used,
        requested: d.requested,
        scope: d.scope,
        poolId: d.poolId,
        ...(d.userId === undefined ? {} : { userId: d.userId }),
      },
    );
  }
}

export interface ClaimRequest {
  /** The VM pool the resources are used in. */
  poolId: number;
  /** The VM's owner: per-user quotas are that user's. */
  userId: number;
  /** What the change adds on top of what the tables hold now (e.g. starting a VM: its vCPUs, memory, NICs, 1 VM). */
  delta: Partial<Resources>;
  /** The VM's whole size after the change, checked against the largest host (assertFitsLargestHost). */
  hardwarePoolMax?: { vcpus: number; memoryMiB: number };
}

/**
 * Checks that `delta` fits every quota that applies, inside the caller's transaction; throws
 * QuotaExceededError otherwise. Callers then change the VM/volume/NIC rows in the same transaction and commit:
 * the pool locks taken here serialize them against every other claim under the same quotas.
 *
 * One statement (herd_quota_claim, migration T70) does it all in the database: it locks rows of `pools` only
 * (FOR UPDATE, ascending id): the VM pool itself and every ancestor holding a quota that applies; then it counts
 * the usage of each applicable quota's subtree from the tables and checks it. To avoid deadlocks, call claim() before locking or updating VM,
 * volume or NIC rows, and do not lock pool rows yourself first. Re-check the VM's state after claim()
 * (e.g. `UPDATE vms SET state = 'starting' WHERE id = $1 AND state = 'shutoff'`) since the claim may have
 * waited. Use the default READ COMMITTED isolation: each statement after the locks sees what others committed.
 */
export async function claim(trx: Transaction<DB>, request: ClaimRequest): Promise<void> {
  if (request.hardwarePoolMax) await assertFitsLargestHost(trx, request.poolId, request.hardwarePoolMax);
  const delta = zero();
  for (const key of RESOURCE_KEYS) delta[key] = Math.max(0, request.delta[key] ?? 0);
  const refusal = await claimQuota(trx, request.poolId, request.userId, delta);
  if (refusal === 'pool_not_found') throw notFound('pool');
  if (refusal) throw quotaRefusal(refusal);
}

/** The 409 for a refusal of herd_quota_claim. */
export function quotaRefusal(r: QuotaRefusal): QuotaExceededError {
  return new QuotaExceededError({
    resource: r.resource,
    limit: r.limit,
    used: r.used,
    requested: r.requested,
    scope: r.scope,
    poolId: r.poolId,
    ...(r.userId === null ? {} : { userId: r.userId }),
  });
}

/**
 * "No VM may be given more memory or vCPUs than the largest host in its hardware pool has, whatever the
 * quota": throws 409 `exceeds_host_capacity` unless one host of the VM pool's hardware pool (or of a hardware
 * pool nested in it) has at least `size.vcpus` CPUs and `size.memoryMiB` memory.
 */
export async function assertFitsLargestHost(
  trx: Database,
  vmPoolId: number,
  size: { vcpus: number; memoryMiB: number },
): Promise<void> {
  const chain = await ancestorChain(trx, vmPoolId);
  const hardware = chain.find((p) => p.kind === 'hardware');
  if (!hardware) throw notFound('pool');
  const cap = await hostCapacity(trx, hardware.id, size);
  if (cap.fits) return;
  const resource =
    size.vcpus > cap.max_cpus ? 'vcpus' : size.memoryMiB > cap.max_memory_mib ? 'memory' : 'vcpus+memory';
  throw new HttpError(
    409,
    'exceeds_host_capacity',
    cap.max_cpus === 0
      ? `hardware pool ${hardware.id} has no host to hold ${size.vcpus} vCPUs and ${size.memoryMiB} MiB`
      : `no host in hardware pool ${hardware.id} has ${size.vcpus} vCPUs and ${size.memoryMiB} MiB ` +
          `(largest: ${cap.max_cpus} CPUs, ${cap.max_memory_mib} MiB)`,
    {
      resource,
      requested: { vcpus: size.vcpus, memoryMiB: size.memoryMiB },
      largestHost: { vcpus: cap.max_cpus, memoryMiB: cap.max_memory_mib },
      hardwarePoolId: hardware.id,
    },
  );
}

function zero(): Resources {
  return { vcpus: 0, memoryMiB: 0, storageGiB: 0, nics: 0, vms: 0 };
}

function toResources(row: UsageRow): Resources {
  return {
    vcpus: row.vcpus,
    memoryMiB: row.memory_mib,
    storageGiB: row.storage_gib,
    nics: row.nics,
    vms: row.vms,
  };
}

function sumUsage(rows: UsageRow[]): Resources {
  const total = zero();
  for (const row of rows) for (const key of RESOURCE_KEYS) total[key] += toResources(row)[key];
  return total;
}

export type UsageLine = { [K in ResourceKey]: { used: number; limit: number | null } } & {
  /** The pool whose quota row gives the limits: this pool or its nearest ancestor with one; null: unlimited. */
  limitPoolId: number | null;
};

export interface PoolUsage {
  poolId: number;
  total: UsageLine;
  users: Array<UsageLine & { userId: number; username: string }>;
}

function line(used: Resources, quota: QuotaRow | undefined): UsageLine {
  const out = { limitPoolId: quota?.pool_id ?? null } as UsageLine;
  for (const key of RESOURCE_KEYS) out[key] = { used: used[key], limit: quota ? quota[COLUMNS[key]] : null };
  return out;
}

/**
 * Used and limit of each resource in the subtree of `poolId`, in total and per user (every user with a VM
 * there or a quota on the pool or an ancestor). The limit shown is the nearest quota row's (own or ancestor's).
 */
export async function usage(db: Database, poolId: number): Promise<PoolUsage> {
  const chain = await ancestorChain(db, poolId);
  if (!chain.length) throw notFound('pool');
  const quotas = await quotaRows(
    db,
    chain.map((p) => p.id),
  );
  const depth = new Map(chain.map((p, i) => [p.id, i]));
  const nearest = (userId: number | null) =>
    quotas
      .filter((q) => q.user_id === userId)
      .sort((a, b) => depth.get(a.pool_id)! - depth.get(b.pool_id)!)[0];

  const rows = await subtreeUsageByOwner(db, poolId);
  const byUser = new Map(rows.map((r) => [r.owner_id, toResources(r)]));
  for (const q of quotas) if (q.user_id !== null && !byUser.has(q.user_id)) byUser.set(q.user_id, zero());
  const names = await usernames(db, [...byUser.keys()]);
  return {
    poolId,
    total: line(sumUsage(rows), nearest(null)),
    users: [...byUser.entries()]
      .sort(([a], [b]) => a - b)
      .map(([userId, used]) => ({
        userId,
        username: names.get(userId) ?? '',
        ...line(used, nearest(userId)),
      })),
  };
}

export interface RecountDifference {
  poolId: number;
  /** null: the pool total */
  userId: number | null;
  resource: ResourceKey;
  recounted: number;
  reported: number;
}

/**
 * Recounts the usage of every pool from scratch (raw rows summed here, sharing no SQL with `usage`) and lists
 * every difference against what `usage` reports. Both read one snapshot (REPEATABLE READ), so concurrent
 * changes cannot show up as differences. There must be none.
 */
export async function recount(
  db: Database,
): Promise<{ pools: number; vms: number; differences: RecountDifference[] }> {
  return db
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute(async (trx) => {
      const all = await everything(trx);
      const perVm = new Map<number, Resources>();
      for (const vm of all.vms) {
        const active = isActive(vm.state);
        perVm.set(vm.id, {
          vcpus: active ? vm.vcpus : 0,
          memoryMiB: active ? vm.memory_mib : 0,
          storageGiB: 0,
          nics: 0,
          vms: active ? 1 : 0,
        });
      }
      const vmState = new Map(all.vms.map((v) => [v.id, isActive(v.state)]));
      for (const nic of all.nics) if (vmState.get(nic.vm_id)) perVm.get(nic.vm_id)!.nics += 1;
      for (const vol of all.volumes) {
        const r = perVm.get(vol.vm_id!);
        if (r) r.storageGiB += vol.size_gib;
      }
      const parent = new Map(all.pools.map((p) => [p.id, p.parent_id]));
      // Every pool's recounted usage: each VM adds to its pool and every ancestor, per owner and in total.
      const totals = new Map<number, Resources>(all.pools.map((p) => [p.id, zero()]));
      const perUser = new Map<number, Map<number, Resources>>(all.pools.map((p) => [p.id, new Map()]));
      for (const vm of all.vms) {
        const add = perVm.get(vm.id)!;
        const seen = new Set<number>();
        for (let id: number | null = vm.pool_id; id !== null && !seen.has(id); id = parent.get(id) ?? null) {
          seen.add(id);
          const users = perUser.get(id)!;
          if (!users.has(vm.owner_id)) users.set(vm.owner_id, zero());
          for (const key of RESOURCE_KEYS) {
            totals.get(id)![key] += add[key];
            users.get(vm.owner_id)![key] += add[key];
          }
        }
      }

      const differences: RecountDifference[] = [];
      const compare = (poolId: number, userId: number | null, recounted: Resources, reported: Resources) => {
        for (const key of RESOURCE_KEYS) {
          if (Math.abs(recounted[key] - reported[key]) > 1e-6) {
            differences.push({
              poolId,
              userId,
              resource: key,
              recounted: recounted[key],
              reported: reported[key],
            });
          }
        }
      };
      for (const pool of all.pools) {
        const reported = await usage(trx, pool.id);
        compare(pool.id, null, totals.get(pool.id)!, usedOf(reported.total));
        const reportedUsers = new Map(reported.users.map((u) => [u.userId, usedOf(u)]));
        const recountedUsers = perUser.get(pool.id)!;
        for (const userId of new Set([...reportedUsers.keys(), ...recountedUsers.keys()])) {
          compare(pool.id, userId, recountedUsers.get(userId) ?? zero(), reportedUsers.get(userId) ?? zero());
        }
      }
      return { pools: all.pools.length, vms: all.vms.length, differences };
    });
}

function usedOf(l: UsageLine): Resources {
  const out = zero();
  for (const key of RESOURCE_KEYS) out[key] = l[key].used;
  return out;
}
