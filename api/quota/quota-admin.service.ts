import type { Database } from '../../schema/db.js';
import { assertPool } from '../access/access.service.js';
import { userExists } from '../access/permissions.repository.js';
import { audit } from '../audit/audit.service.js';
import type { AuthUser } from '../auth/auth-user.js';
import { notFound } from '../http/errors.js';
import {
  deleteQuota,
  lockPools,
  type QuotaRow,
  quotaRows,
  upsertQuota,
  usernames,
} from './quota.repository.js';
import { type Resources, recount, usage } from './quota.service.js';

/** Quota limits as the API shows them: a null (or absent) field is unlimited. */
export type Limits = { [K in keyof Resources]: number | null };

function toLimits(row: QuotaRow): Limits {
  return {
    vcpus: row.vcpus,
    memoryMiB: row.memory_mib,
    storageGiB: row.storage_gib,
    nics: row.nics,
    vms: row.vms,
  };
}

/**
 * Sets a pool's quota for one user (userId) or for the pool total (userId null); a field left out is
 * unlimited. Needs modify on the pool: since an ancestor's quota keeps applying, a pool admin can only narrow
 * what the admins above allow.
 */
export async function setQuota(
  db: Database,
  user: AuthUser,
  poolId: number,
  userId: number | null,
  input: Partial<Resources>,
) {
  await assertPool(db, user, poolId, 'modify');
  if (userId !== null && !(await userExists(db, userId))) throw notFound('user');
  const row: QuotaRow = {
    pool_id: poolId,
    user_id: userId,
    vcpus: input.vcpus ?? null,
    memory_mib: input.memoryMiB ?? null,
    storage_gib: input.storageGiB ?? null,
    nics: input.nics ?? null,
    vms: input.vms ?? null,
  };
  return db.transaction().execute(async (trx) => {
    // Serializes with claims under this pool: they read the quota after taking the same lock.
    await lockPools(trx, [poolId]);
    const before = (await quotaRows(trx, [poolId])).find((q) => q.user_id === userId);
    await upsertQuota(trx, row);
    const after = { poolId, userId, ...toLimits(row) };
    await audit(trx, {
      userId: user.id,
      action: 'quota.set',
      entityType: 'quota',
      entityId: `${poolId}:${userId ?? 'total'}`,
      before: before ? { poolId, userId, ...toLimits(before) } : null,
      after,
    });
    return after;
  });
}

export async function removeQuota(db: Database, user: AuthUser, poolId: number, userId: number | null) {
  await assertPool(db, user, poolId, 'modify');
  await db.transaction().execute(async (trx) => {
    await lockPools(trx, [poolId]);
    const before = (await quotaRows(trx, [poolId])).find((q) => q.user_id === userId);
    if (!before || !(await deleteQuota(trx, poolId, userId))) throw notFound('quota');
    await audit(trx, {
      userId: user.id,
      action: 'quota.delete',
      entityType: 'quota',
      entityId: `${poolId}:${userId ?? 'total'}`,
      before: { poolId, userId, ...toLimits(before) },
    });
  });
}

/** The quota rows set on the pool itself. A `user` sees the pool total and its own. */
export async function listQuotas(db: Database, user: AuthUser, poolId: number) {
  const role = await assertPool(db, user, poolId, 'view');
  const rows = (await quotaRows(db, [poolId])).filter(
    (q) => role !== 'user' || q.user_id === null || q.user_id === user.id,
  );
  const names = await usernames(
    db,
    rows.flatMap((r) => (r.user_id === null ? [] : [r.user_id])),
  );
  const items = rows
    .map((r) => ({
      poolId,
      userId: r.user_id,
      username: r.user_id === null ? null : (names.get(r.user_id) ?? null),
      ...toLimits(r),
    }))
    .sort((a, b) => (a.userId ?? 0) - (b.userId ?? 0));
  return { items, total: items.length };
}

/** Used and limit per resource, per user and in total. A `user` sees the total and its own line. */
export async function poolUsage(db: Database, user: AuthUser, poolId: number) {
  const role = await assertPool(db, user, poolId, 'view');
  const result = await usage(db, poolId);
  if (role === 'user') result.users = result.users.filter((u) => u.userId === user.id);
  return result;
}

/** Recount from scratch against what the usage endpoint reports; super-admins only. */
export async function reconcile(db: Database, user: AuthUser) {
  if (!user.isSuperAdmin) throw notFound('quota reconciliation');
  return recount(db);
}
