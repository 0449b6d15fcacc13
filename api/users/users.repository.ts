import type { Database } from '../../schema/db.js';

export const USER_COLUMNS = [
  'id',
  'username',
  'source',
  'display_name',
  'email',
  'is_super_admin',
  'disabled',
  'created_at',
  'ldap_dn',
] as const;

export async function findUser(db: Database, id: number) {
  return db.selectFrom('users').select(USER_COLUMNS).where('id', '=', id).executeTakeFirst();
}
export type UserRow = NonNullable<Awaited<ReturnType<typeof findUser>>>;

export async function findUserByName(db: Database, username: string) {
  return db.selectFrom('users').select(USER_COLUMNS).where('username', '=', username).executeTakeFirst();
}

export async function findPasswordHash(db: Database, id: number): Promise<string | null> {
  const row = await db.selectFrom('users').select('password_hash').where('id', '=', id).executeTakeFirst();
  return row?.password_hash ?? null;
}

export async function listUsers(
  db: Database,
  onlyId: number | undefined,
  page: { limit: number; offset: number },
) {
  let q = db.selectFrom('users');
  if (onlyId !== undefined) q = q.where('id', '=', onlyId);
  const [items, { total }] = await Promise.all([
    q.select(USER_COLUMNS).orderBy('id').limit(page.limit).offset(page.offset).execute(),
    q.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow(),
  ]);
  return { items, total: Number(total) };
}

export async function updateUser(
  db: Database,
  id: number,
  set: Partial<{
    display_name: string | null;
    email: string | null;
    password_hash: string | null;
    is_super_admin: boolean;
    disabled: boolean;
  }>,
) {
  return db
    .updateTable('users')
    .set(set)
    .where('id', '=', id)
    .returning(USER_COLUMNS)
    .executeTakeFirstOrThrow();
}

export async function countOwnedVms(db: Database, userId: number): Promise<number> {
  const { n } = await db
    .selectFrom('vms')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('owner_id', '=', userId)
    .executeTakeFirstOrThrow();
  return Number(n);
}

export async function deleteUser(db: Database, id: number): Promise<void> {
  await db.deleteFrom('users').where('id', '=', id).execute();
}

/** herd users by username, to mark which directory entries were already added. */
export async function userIdsByName(db: Database, usernames: string[]): Promise<Map<string, number>> {
  if (!usernames.length) return new Map();
  const rows = await db
    .selectFrom('users')
    .select(['id', 'username'])
    .where('username', 'in', usernames)
    .execute();
  return new Map(rows.map((r) => [r.username, r.id]));
}
