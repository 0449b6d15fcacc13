import { type Expression, type SqlBool, sql } from 'kysely';
import type { Database } from '../../schema/db.js';
import type { Role } from '../../schema/index.js';

/** Larger is stronger; the strongest grant on a pool or any ancestor wins. */
export const ROLE_RANK: Record<Role, number> = { monitor: 1, user: 2, admin: 3 };
const RANK_ROLE: Record<number, Role> = { 1: 'monitor', 2: 'user', 3: 'admin' };

/**
 * The pool and its ancestors, nearest first, each with the user's grant on it (if any).
 * Empty when the pool does not exist. UNION (not UNION ALL) so that a cycle could never loop.
 */
export async function grantsUpTheTree(
  db: Database,
  userId: number,
  poolId: number,
): Promise<Array<{ id: number; role: Role | null }>> {
  const rows = await sql<{ id: number; role: Role | null }>`
    WITH RECURSIVE chain(id, parent_id, depth) AS (
      SELECT id, parent_id, 0 FROM pools WHERE id = ${poolId}
      UNION
      SELECT p.id, p.parent_id, chain.depth + 1 FROM pools p JOIN chain ON p.id = chain.parent_id
    )
    SELECT chain.id, perm.role
    FROM chain LEFT JOIN permissions perm ON perm.pool_id = chain.id AND perm.user_id = ${userId}
    ORDER BY chain.depth`.execute(db);
  return rows.rows;
}

/** Every pool at or below a grant of the user, with the strongest role that reaches it. */
export async function effectiveRoles(db: Database, userId: number): Promise<Map<number, Role>> {
  const rows = await sql<{ id: number; rank: number }>`
    WITH RECURSIVE reach(id, rank) AS (
      SELECT pool_id, CASE role WHEN 'admin' THEN 3 WHEN 'user' THEN 2 ELSE 1 END
      FROM permissions WHERE user_id = ${userId}
      UNION
      SELECT p.id, reach.rank FROM pools p JOIN reach ON p.parent_id = reach.id
    )
    SELECT id, max(rank)::int AS rank FROM reach GROUP BY id`.execute(db);
  return new Map(rows.rows.map((r) => [r.id, RANK_ROLE[r.rank]]));
}

/** Which VMs a caller sees: all of some pools, only its own in others. */
export type VmVisibility = 'all' | { allInPools: number[]; ownInPools: number[]; userId: number };

/**
 * A WHERE condition on the `vms` table (by that name) for a VmVisibility, for repositories listing VMs:
 * `db.selectFrom('vms').where(vmVisibleWhere(visibility))` — works in joins too.
 */
export function vmVisibleWhere(visibility: VmVisibility): Expression<SqlBool> {
  if (visibility === 'all') return sql<SqlBool>`true`;
  const { allInPools, ownInPools, userId } = visibility;
  return sql<SqlBool>`(vms.pool_id = any(${allInPools}::int[])
    OR (vms.pool_id = any(${ownInPools}::int[]) AND vms.owner_id = ${userId}))`;
}

/** Whether the user holds a role on at least one pool with the given rank or stronger. */
export async function hasAnyRole(db: Database, userId: number, role: Role): Promise<boolean> {
  const roles = Object.entries(ROLE_RANK)
    .filter(([, rank]) => rank >= ROLE_RANK[role])
    .map(([r]) => r as Role);
  const row = await db
    .selectFrom('permissions')
    .select('pool_id')
    .where('user_id', '=', userId)
    .where('role', 'in', roles)
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}
