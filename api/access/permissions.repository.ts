import { sql } from 'kysely';
import type { Database } from '../../schema/db.js';
import type { Role } from '../../schema/index.js';

export interface PermissionRow {
  pool_id: number;
  user_id: number;
  role: Role;
  source: 'manual' | 'ldap';
}

export async function findPermission(db: Database, poolId: number, userId: number) {
  return db
    .selectFrom('permissions')
    .select(['pool_id', 'user_id', 'role', 'source'])
    .where('pool_id', '=', poolId)
    .where('user_id', '=', userId)
    .executeTakeFirst();
}

export async function upsertPermission(db: Database, row: PermissionRow): Promise<void> {
  await db
    .insertInto('permissions')
    .values(row)
    .onConflict((oc) =>
      oc
        .columns(['pool_id', 'user_id'])
        .doUpdateSet({ role: row.role, source: row.source, granted_at: sql`now()` }),
    )
    .execute();
}

export async function deletePermission(db: Database, poolId: number, userId: number): Promise<void> {
  await db.deleteFrom('permissions').where('pool_id', '=', poolId).where('user_id', '=', userId).execute();
}

/** Grants on the pool and on its ancestors (which hold in it too), nearest first. */
export async function grantsReaching(db: Database, poolId: number) {
  const { rows } = await sql<{
    pool_id: number;
    user_id: number;
    username: string;
    role: Role;
    source: 'manual' | 'ldap';
    granted_at: Date;
    depth: number;
  }>`
    WITH RECURSIVE chain(id, parent_id, depth) AS (
      SELECT id, parent_id, 0 FROM pools WHERE id = ${poolId}
      UNION
      SELECT p.id, p.parent_id, chain.depth + 1 FROM pools p JOIN chain ON p.id = chain.parent_id
    )
    SELECT perm.pool_id, perm.user_id, u.username, perm.role, perm.source, perm.granted_at, chain.depth
    FROM chain JOIN permissions perm ON perm.pool_id = chain.id JOIN users u ON u.id = perm.user_id
    ORDER BY chain.depth, u.username`.execute(db);
  return rows;
}

export async function ldapPermissions(db: Database, userId: number) {
  return db
    .selectFrom('permissions')
    .select(['pool_id', 'user_id', 'role', 'source'])
    .where('user_id', '=', userId)
    .where('source', '=', 'ldap')
    .execute();
}

export async function findPoolRow(db: Database, poolId: number) {
  return db
    .selectFrom('pools')
    .select(['id', 'parent_id', 'kind'])
    .where('id', '=', poolId)
    .executeTakeFirst();
}

export async function userExists(db: Database, userId: number): Promise<boolean> {
  return (
    (await db.selectFrom('users').select('id').where('id', '=', userId).executeTakeFirst()) !== undefined
  );
}
