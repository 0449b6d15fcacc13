import { insertUser } from '../../api/auth/auth.repository.js';
import { issueToken } from '../../api/auth/auth.service.js';
import { hashPassword } from '../../api/auth/secrets.js';
import type { Database } from '../../schema/db.js';
import type { Role } from '../../schema/index.js';

/** A user (local, no password unless given) with an API token, for tests: `authHeader(token)` in inject. */
export async function createUserWithToken(
  db: Database,
  options: { username: string; superAdmin?: boolean; password?: string },
): Promise<{ id: number; token: string }> {
  const id = await insertUser(db, {
    username: options.username,
    source: 'local',
    password_hash: options.password ? await hashPassword(options.password) : null,
    is_super_admin: options.superAdmin ?? false,
  });
  const { token } = await issueToken(db, id, { name: 'test' });
  return { id, token };
}

export function authHeader(token: string): { authorization: string } {
  return { authorization: `Bearer ${token}` };
}

/** A pool inserted directly (no access checks): `parentId` defaults to the default hardware pool (1). */
export async function createPool(
  db: Database,
  options: { name: string; kind?: 'hardware' | 'vm'; parentId?: number | null },
): Promise<number> {
  const { id } = await db
    .insertInto('pools')
    .values({
      name: options.name,
      kind: options.kind ?? 'hardware',
      parent_id: options.parentId === undefined ? 1 : options.parentId,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return id;
}

/** Grants a role on a pool directly (no access checks). */
export async function grantRole(db: Database, poolId: number, userId: number, role: Role): Promise<void> {
  await db
    .insertInto('permissions')
    .values({ pool_id: poolId, user_id: userId, role })
    .onConflict((oc) => oc.columns(['pool_id', 'user_id']).doUpdateSet({ role }))
    .execute();
}
