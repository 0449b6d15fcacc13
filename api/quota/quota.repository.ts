import { sql } from 'kysely';
import type { Database } from '../../schema/db.js';
import { ACTIVE_VM_STATES } from '../vms/vm-states.js';

export interface ChainPool {
  id: number;
  parent_id: number | null;
  kind: 'hardware' | 'vm';
}

export interface QuotaRow {
  pool_id: number;
  user_id: number | null;
  vcpus: number | null;
  memory_mib: number | null;
  storage_gib: number | null;
  nics: number | null;
  vms: number | null;
}

export interface UsageRow {
  owner_id: number;
  vcpus: number;
  memory_mib: number;
  storage_gib: number;
  nics: number;
  vms: number;
}

/** The pool and its ancestors, nearest first; empty when the pool does not exist. */
export async function ancestorChain(db: Database, poolId: number): Promise<ChainPool[]> {
  const { rows } = await sql<ChainPool>`
    WITH RECURSIVE chain(id, parent_id, kind, depth) AS (
      SELECT id, parent_id, kind, 0 FROM pools WHERE id = ${poolId}
      UNION
      SELECT p.id, p.parent_id, p.kind, chain.depth + 1 FROM pools p JOIN chain ON p.id = chain.parent_id
    )
    SELECT id, parent_id, kind FROM chain ORDER BY depth`.execute(db);
  return rows;
}

/** Quota rows on the given pools: the pool totals, and per-user rows of `userId` (every user's if omitted). */
export async function quotaRows(db: Database, poolIds: number[], userId?: number): Promise<QuotaRow[]> {
  let q = db
    .selectFrom('quotas')
    .select(['pool_id', 'user_id', 'vcpus', 'memory_mib', 'storage_gib', 'nics', 'vms'])
    .where('pool_id', 'in', poolIds.length ? poolIds : [0]);
  if (userId !== undefined)
    q = q.where((eb) => eb.or([eb('user_id', 'is', null), eb('user_id', '=', userId)]));
  return q.execute();
}

/**
 * Row locks on pools, always taken in ascending id order within one statement so that concurrent
 * claimers never wait on each other in a cycle.
 */
export async function lockPools(db: Database, poolIds: number[]): Promise<void> {
  await db.selectFrom('pools').select('id').where('id', 'in', poolIds).orderBy('id').forUpdate().execute();
}

/** A quota refusal as herd_quota_claim answers it (resource keys as in quota.service.ts). */
export interface QuotaRefusal {
  resource: 'vcpus' | 'memoryMiB' | 'storageGiB' | 'nics' | 'vms';
  limit: number;
  used: number;
  requested: number;
  scope: 'user' | 'pool';
  poolId: number;
  userId: number | null;
}

/**
 * The quota claim in one statement (herd_quota_claim, migration T70): locks the pools whose quotas apply, counts
 * their usage and checks it; null when the request fits, else the first refusal; 'pool_not_found'.
 */
export async function claimQuota(
  db: Database,
  poolId: number,
  userId: number,
  delta: { vcpus: number; memoryMiB: number; storageGiB: number; nics: number; vms: number },
): Promise<QuotaRefusal | 'pool_not_found' | null> {
  const { rows } = await sql<{ refusal: (QuotaRefusal & { error?: 'pool_not_found' }) | null }>`
    SELECT herd_quota_claim(${poolId}::int, ${userId}::int, ${[...ACTIVE_VM_STATES]}::text[], ${delta.vcpus}::int8,
      ${delta.memoryMiB}::int8, ${delta.storageGiB}::float8, ${delta.nics}::int8, ${delta.vms}::int8) AS refusal`.execute(
    db,
  );
  const refusal = rows[0].refusal;
  if (refusal?.error) return refusal.error;
  return refusal;
}

/**
 * Usage per VM owner in the subtree of `poolId` (every owner with a VM there, in any state): storage for every VM,
 * the rest only for VMs in ACTIVE_VM_STATES, as pool_usage keeps it (migration T81) — what the quota claim reads.
 * `recount` (quota.service.ts) checks it against the raw rows.
 */
export async function subtreeUsageByOwner(
  db: Database,
  poolId: number,
  ownerId?: number,
): Promise<UsageRow[]> {
  const { rows } = await sql<UsageRow>`
    WITH RECURSIVE sub(id) AS (
      SELECT id FROM pools WHERE id = ${poolId}
      UNION
      SELECT p.id FROM pools p JOIN sub ON p.parent_id = sub.id
    )
    SELECT owner_id, sum(vcpus)::int8 AS vcpus, sum(memory_mib)::int8 AS memory_mib,
      sum(storage_gib)::float8 AS storage_gib, sum(nics)::int8 AS nics, sum(vms)::int8 AS vms
    FROM pool_usage
    WHERE pool_id IN (SELECT id FROM sub) ${ownerId === undefined ? sql`` : sql`AND owner_id = ${ownerId}`}
    GROUP BY owner_id HAVING sum(vms_defined) > 0
    ORDER BY owner_id`.execute(db);
  return rows;
}

/** The hosts of a hardware pool and of the hardware pools nested in it: the biggest of each, and a fit. */
export async function hostCapacity(
  db: Database,
  hardwarePoolId: number,
  want: { vcpus: number; memoryMiB: number },
): Promise<{ max_cpus: number; max_memory_mib: number; fits: boolean }> {
  const { rows } = await sql<{ max_cpus: number; max_memory_mib: number; fits: boolean }>`
    WITH RECURSIVE sub(id) AS (
      SELECT id FROM pools WHERE id = ${hardwarePoolId}
      UNION
      SELECT p.id FROM pools p JOIN sub ON p.parent_id = sub.id
    )
    SELECT coalesce(max(cpus), 0)::int8 AS max_cpus, coalesce(max(memory_mib), 0)::int8 AS max_memory_mib,
      coalesce(bool_or(cpus >= ${want.vcpus} AND memory_mib >= ${want.memoryMiB}), false) AS fits
    FROM hosts WHERE pool_id IN (SELECT id FROM sub)`.execute(db);
  return rows[0];
}

/** Everything the reconciler recounts from, read raw so that the recount shares no SQL with the usage query. */
export async function everything(db: Database) {
  const [pools, vms, nics, volumes] = await Promise.all([
    db.selectFrom('pools').select(['id', 'parent_id']).execute(),
    db.selectFrom('vms').select(['id', 'pool_id', 'owner_id', 'state', 'vcpus', 'memory_mib']).execute(),
    db.selectFrom('vm_nics').select('vm_id').execute(),
    db.selectFrom('volumes').select(['vm_id', 'size_gib']).where('vm_id', 'is not', null).execute(),
  ]);
  return { pools, vms, nics, volumes };
}

export async function usernames(db: Database, ids: number[]): Promise<Map<number, string>> {
  if (!ids.length) return new Map();
  const rows = await db.selectFrom('users').select(['id', 'username']).where('id', 'in', ids).execute();
  return new Map(rows.map((r) => [r.id, r.username]));
}

export async function upsertQuota(db: Database, row: QuotaRow): Promise<void> {
  await db
    .insertInto('quotas')
    .values(row)
    .onConflict((oc) =>
      oc.columns(['pool_id', 'user_id']).doUpdateSet({
        vcpus: row.vcpus,
        memory_mib: row.memory_mib,
        storage_gib: row.storage_gib,
        nics: row.nics,
        vms: row.vms,
      }),
    )
    .execute();
}

export async function deleteQuota(db: Database, poolId: number, userId: number | null): Promise<boolean> {
  const res = await db
    .deleteFrom('quotas')
    .where('pool_id', '=', poolId)
    .where((eb) => (userId === null ? eb('user_id', 'is', null) : eb('user_id', '=', userId)))
    .executeTakeFirst();
  return res.numDeletedRows > 0n;
}
