import { sql } from 'kysely';
import type { Database } from '../../schema/db.js';

export async function findUserByUsername(db: Database, username: string) {
  return db
    .selectFrom('users')
    .select(['id', 'username', 'source', 'password_hash', 'is_super_admin', 'disabled', 'ldap_dn'])
    .where('username', '=', username)
    .executeTakeFirst();
}

export async function findUserById(db: Database, id: number) {
  return db
    .selectFrom('users')
    .select(['id', 'username', 'source', 'display_name', 'email', 'is_super_admin', 'disabled', 'created_at'])
    .where('id', '=', id)
    .executeTakeFirst();
}

export async function insertSession(
  db: Database,
  row: {
    user_id: number;
    token_hash: string;
    kind: 'session' | 'token';
    name: string | null;
    csrf_token: string | null;
    expires_at: Date;
  },
): Promise<number> {
  const { id } = await db.insertInto('sessions').values(row).returning('id').executeTakeFirstOrThrow();
  return id;
}

/** A live (unrevoked, unexpired) credential and its enabled user. */
export async function findLiveSession(db: Database, tokenHash: string) {
  return db
    .selectFrom('sessions')
    .innerJoin('users', 'users.id', 'sessions.user_id')
    .select([
      'sessions.id',
      'sessions.kind',
      'sessions.csrf_token',
      'sessions.last_used_at',
      'users.id as user_id',
      'users.username',
      'users.is_super_admin',
    ])
    .where('sessions.token_hash', '=', tokenHash)
    .where('sessions.revoked_at', 'is', null)
    .where('sessions.expires_at', '>', sql<Date>`now()`)
    .where('users.disabled', '=', false)
    .executeTakeFirst();
}

export async function touchSession(db: Database, id: number): Promise<void> {
  await db.updateTable('sessions').set({ last_used_at: sql`now()` }).where('id', '=', id).execute();
}

export async function revokeSession(db: Database, id: number, userId: number, kind: 'session' | 'token') {
  return db
    .updateTable('sessions')
    .set({ revoked_at: sql`now()` })
    .where('id', '=', id)
    .where('user_id', '=', userId)
    .where('kind', '=', kind)
    .where('revoked_at', 'is', null)
    .returning(['id', 'name', 'expires_at'])
    .executeTakeFirst();
}

export async function revokeAllSessions(db: Database, userId: number): Promise<void> {
  await db
    .updateTable('sessions')
    .set({ revoked_at: sql`now()` })
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .execute();
}

export async function listTokens(db: Database, userId: number, page: { limit: number; offset: number }) {
  const base = db
    .selectFrom('sessions')
    .where('user_id', '=', userId)
    .where('kind', '=', 'token')
    .where('revoked_at', 'is', null);
  const [items, { total }] = await Promise.all([
    base
      .select(['id', 'name', 'created_at', 'expires_at', 'last_used_at'])
      .orderBy('id')
      .limit(page.limit)
      .offset(page.offset)
      .execute(),
    base.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow(),
  ]);
  return { items, total: Number(total) };
}

export async function insertUser(
  db: Database,
  row: {
    username: string;
    source: 'local' | 'ldap';
    password_hash: string | null;
    is_super_admin: boolean;
    display_name?: string | null;
    email?: string | null;
    ldap_dn?: string | null;
  },
): Promise<number> {
  const { id } = await db.insertInto('users').values(row).returning('id').executeTakeFirstOrThrow();
  return id;
}
