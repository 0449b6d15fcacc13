import { type Insertable, type Selectable, sql } from 'kysely';
import type { Database } from '../../schema/db.js';
import type { QuotaEnforcementLogTable, QuotaEnforcementTable, QuotaPolicy } from '../../schema/index.js';

export type EnforcementRow = Selectable<QuotaEnforcementTable>;
export type EnforcementLogRow = Selectable<QuotaEnforcementLogTable>;

/** Advisory lock key of the reconciler ("herq"): one process enforces at a time. */
const ENFORCER_LOCK = 0x68657271;

export async function tryLockEnforcer(trx: Database): Promise<boolean> {
  const { rows } = await sql<{
    locked: boolean;
  }>`SELECT pg_try_advisory_xact_lock(${ENFORCER_LOCK}::int4, 0) AS locked`.execute(trx);
  return rows[0].locked;
}

export async function enforcementRows(db: Database): Promise<EnforcementRow[]> {
  return db.selectFrom('quota_enforcement').selectAll().execute();
}

export async function insertEnforcement(db: Database, row: Insertable<QuotaEnforcementTable>): Promise<void> {
  await db.insertInto('quota_enforcement').values(row).execute();
}

export async function updateEnforcement(
  db: Database,
  key: { poolId: number; userId: number | null },
  values: Partial<Insertable<QuotaEnforcementTable>>,
): Promise<void> {
  await db
    .updateTable('quota_enforcement')
    .set(values)
    .where('pool_id', '=', key.poolId)
    .where((eb) => (key.userId === null ? eb('user_id', 'is', null) : eb('user_id', '=', key.userId)))
    .execute();
}

export async function deleteEnforcement(
  db: Database,
  key: { poolId: number; userId: number | null },
): Promise<void> {
  await db
    .deleteFrom('quota_enforcement')
    .where('pool_id', '=', key.poolId)
    .where((eb) => (key.userId === null ? eb('user_id', 'is', null) : eb('user_id', '=', key.userId)))
    .execute();
}

export async function insertLog(db: Database, row: Insertable<QuotaEnforcementLogTable>): Promise<void> {
  await db.insertInto('quota_enforcement_log').values(row).execute();
}

export interface PoolPolicy {
  id: number;
  name: string;
  quota_policy: QuotaPolicy;
  quota_grace_seconds: number;
}

export async function poolPolicies(db: Database, ids: number[]): Promise<Map<number, PoolPolicy>> {
  if (!ids.length) return new Map();
  const rows = await db
    .selectFrom('pools')
    .select(['id', 'name', 'quota_policy', 'quota_grace_seconds'])
    .where('id', 'in', ids)
    .execute();
  return new Map(rows.map((r) => [r.id, r]));
}

export interface CandidateVm {
  id: number;
  name: string;
  pool_id: number;
  owner_id: number;
  host_id: number | null;
  state: string;
  vcpus: number;
  memory_mib: number;
  nics: number;
  started_at: Date | null;
}

/**
 * VMs under a quota (the subtree of its pool; the user's own for a per-user quota) in the given states,
 * most recently started first (a VM whose start herd never saw is dated by its last state change).
 */
export async function vmsUnderQuota(
  db: Database,
  quota: { poolId: number; userId: number | null },
  states: readonly string[],
): Promise<CandidateVm[]> {
  const { rows } = await sql<CandidateVm>`
    WITH RECURSIVE sub(id) AS (
      SELECT id FROM pools WHERE id = ${quota.poolId}
      UNION
      SELECT p.id FROM pools p JOIN sub ON p.parent_id = sub.id
    )
    SELECT v.id, v.name, v.pool_id, v.owner_id, v.host_id, v.state, v.vcpus, v.memory_mib, v.started_at,
      (SELECT count(*) FROM vm_nics n WHERE n.vm_id = v.id)::int AS nics
    FROM vms v
    WHERE v.pool_id IN (SELECT id FROM sub) AND v.state = any(${[...states]}::text[])
      ${quota.userId === null ? sql`` : sql`AND v.owner_id = ${quota.userId}`}
    ORDER BY coalesce(v.started_at, v.state_changed_at) DESC, v.id DESC`.execute(db);
  return rows;
}

/** VMs herd asked to suspend since `since` (not asked again while their first request may still land). */
export async function recentlySuspended(db: Database, vmIds: number[], since: Date): Promise<Set<number>> {
  if (!vmIds.length) return new Set();
  const rows = await db
    .selectFrom('quota_enforcement_log')
    .select('vm_id')
    .where('action', '=', 'suspend')
    .where('vm_id', 'in', vmIds)
    .where('at', '>=', since)
    .execute();
  return new Set(rows.map((r) => r.vm_id!));
}

/** Locks the VM row if it is still in one of `states`; undefined when it moved on. */
export async function lockVmInState(db: Database, vmId: number, states: readonly string[]) {
  return db
    .selectFrom('vms')
    .select(['id', 'state', 'host_id', 'pool_id'])
    .where('id', '=', vmId)
    .where('state', 'in', [...states])
    .forUpdate()
    .executeTakeFirst();
}

/** Blocking rows on any of `poolIds` that apply to `userId` (their own quota or a pool total). */
export async function blockingRows(
  db: Database,
  poolIds: number[],
  userId: number,
): Promise<EnforcementRow[]> {
  return db
    .selectFrom('quota_enforcement')
    .selectAll()
    .where('blocked', '=', true)
    .where('pool_id', 'in', poolIds.length ? poolIds : [0])
    .where((eb) => eb.or([eb('user_id', 'is', null), eb('user_id', '=', userId)]))
    .execute();
}

export async function enforcementOn(db: Database, poolIds: number[]) {
  return db
    .selectFrom('quota_enforcement as e')
    .leftJoin('users as u', 'u.id', 'e.user_id')
    .selectAll('e')
    .select('u.username')
    .where('e.pool_id', 'in', poolIds.length ? poolIds : [0])
    .orderBy('e.pool_id')
    .orderBy('e.user_id')
    .execute();
}

export async function logOf(db: Database, poolId: number, limit: number) {
  return db
    .selectFrom('quota_enforcement_log as l')
    .leftJoin('users as u', 'u.id', 'l.user_id')
    .leftJoin('vms as v', 'v.id', 'l.vm_id')
    .selectAll('l')
    .select(['u.username', 'v.name as vm_name'])
    .where('l.pool_id', '=', poolId)
    .orderBy('l.at', 'desc')
    .orderBy('l.id', 'desc')
    .limit(limit)
    .execute();
}

/** When the latest VM under a quota entered a state that counts against it (the moment usage last grew). */
export async function latestActivation(
  db: Database,
  quota: { poolId: number; userId: number | null },
  activeStates: readonly string[],
): Promise<Date | null> {
  const { rows } = await sql<{ at: Date | null }>`
    WITH RECURSIVE sub(id) AS (
      SELECT id FROM pools WHERE id = ${quota.poolId}
      UNION
      SELECT p.id FROM pools p JOIN sub ON p.parent_id = sub.id
    )
    SELECT max(v.state_changed_at) AS at FROM vms v
    WHERE v.pool_id IN (SELECT id FROM sub) AND v.state = any(${[...activeStates]}::text[])
      ${quota.userId === null ? sql`` : sql`AND v.owner_id = ${quota.userId}`}`.execute(db);
  return rows[0]?.at ?? null;
}
