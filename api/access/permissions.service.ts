import type { Database } from '../../schema/db.js';
import type { Role } from '../../schema/index.js';
import { audit } from '../audit/audit.service.js';
import type { AuthUser } from '../auth/auth-user.js';
import { forbidden, notFound } from '../http/errors.js';
import { ROLE_RANK } from './access.repository.js';
import { assertPool, effectiveRole, roleAllows } from './access.service.js';
import {
  deletePermission,
  findPermission,
  findPoolRow,
  grantsReaching,
  ldapPermissions,
  upsertPermission,
  userExists,
} from './permissions.repository.js';

/**
 * Who may change the grants on a pool: "only pool admins grant below, only the super-admin at a root pool".
 * A grant on pool P needs `modify` on P's parent, so an admin never changes the grants at its own level
 * (its own, its peers') and nobody but the super-admin grants on a root pool.
 */
async function assertMayGrant(db: Database, user: AuthUser, poolId: number): Promise<void> {
  await assertPool(db, user, poolId, 'view');
  const pool = await findPoolRow(db, poolId);
  if (!pool) throw notFound('pool');
  if (user.isSuperAdmin) return;
  if (pool.parent_id === null) throw forbidden('only the super-admin grants roles on a root pool');
  if (!roleAllows(await effectiveRole(db, user, pool.parent_id), 'modify')) {
    throw forbidden('granting roles on a pool needs the admin role on its parent pool');
  }
}

export async function setPermission(
  db: Database,
  user: AuthUser,
  poolId: number,
  userId: number,
  role: Role,
) {
  await assertMayGrant(db, user, poolId);
  if (!(await userExists(db, userId))) throw notFound('user');
  return db.transaction().execute(async (trx) => {
    const before = await findPermission(trx, poolId, userId);
    await upsertPermission(trx, { pool_id: poolId, user_id: userId, role, source: 'manual' });
    const after = { poolId, userId, role, source: 'manual' };
    await audit(trx, {
      userId: user.id,
      action: 'permission.set',
      entityType: 'permission',
      entityId: `${poolId}:${userId}`,
      before: before ? toApi(before) : null,
      after,
    });
    return after;
  });
}

export async function removePermission(db: Database, user: AuthUser, poolId: number, userId: number) {
  await assertMayGrant(db, user, poolId);
  await db.transaction().execute(async (trx) => {
    const before = await findPermission(trx, poolId, userId);
    if (!before) throw notFound('permission');
    await deletePermission(trx, poolId, userId);
    await audit(trx, {
      userId: user.id,
      action: 'permission.delete',
      entityType: 'permission',
      entityId: `${poolId}:${userId}`,
      before: toApi(before),
    });
  });
}

/** The grants that hold in a pool: its own and those inherited from its ancestors. */
export async function listPermissions(db: Database, user: AuthUser, poolId: number) {
  await assertPool(db, user, poolId, 'view');
  const rows = await grantsReaching(db, poolId);
  return {
    total: rows.length,
    items: rows.map((r) => ({
      poolId: r.pool_id,
      userId: r.user_id,
      username: r.username,
      role: r.role,
      source: r.source,
      inherited: r.depth > 0,
      grantedAt: r.granted_at.toISOString(),
    })),
  };
}

function toApi(r: { pool_id: number; user_id: number; role: Role; source: string }) {
  return { poolId: r.pool_id, userId: r.user_id, role: r.role, source: r.source };
}

/**
 * Applies the LDAP group → role mapping at login: the user gets each mapped role whose group it is in
 * (the strongest per pool), and loses the grants an earlier mapping gave that no longer apply. Manual grants
 * are left alone.
 */
export async function syncLdapGrants(
  db: Database,
  userId: number,
  mapping: Array<{ groupDn: string; role: Role; poolId: number }>,
  memberOf: string[],
): Promise<void> {
  const groups = new Set(memberOf.map((g) => g.toLowerCase()));
  const wanted = new Map<number, Role>();
  for (const m of mapping) {
    if (!groups.has(m.groupDn.toLowerCase())) continue;
    const have = wanted.get(m.poolId);
    if (!have || ROLE_RANK[m.role] > ROLE_RANK[have]) wanted.set(m.poolId, m.role);
  }
  await db.transaction().execute(async (trx) => {
    for (const old of await ldapPermissions(trx, userId)) {
      if (wanted.has(old.pool_id)) continue;
      await deletePermission(trx, old.pool_id, userId);
      await audit(trx, {
        userId: null,
        action: 'permission.delete',
        entityType: 'permission',
        entityId: `${old.pool_id}:${userId}`,
        before: toApi(old),
      });
    }
    for (const [poolId, role] of wanted) {
      if (!(await findPoolRow(trx, poolId))) continue;
      const before = await findPermission(trx, poolId, userId);
      if (before?.source === 'manual' || (before && before.role === role)) continue;
      await upsertPermission(trx, { pool_id: poolId, user_id: userId, role, source: 'ldap' });
      await audit(trx, {
        userId: null,
        action: 'permission.set',
        entityType: 'permission',
        entityId: `${poolId}:${userId}`,
        before: before ? toApi(before) : null,
        after: { poolId, userId, role, source: 'ldap' },
      });
    }
  });
}
