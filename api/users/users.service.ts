import type { Config } from '../../lib/config.js';
import type { Database } from '../../schema/db.js';
import { canListUsers } from '../access/access.service.js';
import { audit } from '../audit/audit.service.js';
import { insertUser, revokeAllSessions } from '../auth/auth.repository.js';
import type { AuthUser } from '../auth/auth-user.js';
import { findDirectoryUser, listDirectoryUsers } from '../auth/ldap.js';
import { hashPassword, verifyPassword } from '../auth/secrets.js';
import { badRequest, conflict, forbidden, HttpError, notFound } from '../http/errors.js';
import {
  countOwnedVms,
  deleteUser as deleteUserRow,
  findPasswordHash,
  findUser,
  findUserByName,
  listUsers,
  type UserRow,
  updateUser,
  userIdsByName,
} from './users.repository.js';

export function mapUser(row: UserRow) {
  return {
    id: row.id,
    username: row.username,
    source: row.source,
    displayName: row.display_name,
    email: row.email,
    isSuperAdmin: row.is_super_admin,
    disabled: row.disabled,
    createdAt: row.created_at.toISOString(),
  };
}

export interface CreateUserInput {
  username: string;
  password?: string;
  source?: 'local' | 'ldap';
  displayName?: string | null;
  email?: string | null;
  isSuperAdmin?: boolean;
}

const ldapUnconfigured = () =>
  new HttpError(409, 'ldap_not_configured', 'no directory is configured (HERD_LDAP_URL)');

function directory<T>(work: Promise<T>): Promise<T> {
  return work.catch((err: Error) => {
    throw new HttpError(503, 'directory_unavailable', `the directory did not answer: ${err.message}`);
  });
}

/**
 * The super-admin adds users: local ones (with a password, or none until one is set) and directory ones,
 * which must exist in the directory and never have a password here: they log in by LDAP bind.
 */
export async function createUser(db: Database, config: Config, user: AuthUser, input: CreateUserInput) {
  if (!user.isSuperAdmin) throw forbidden('only the super-admin adds users');
  const source = input.source ?? 'local';
  let ldapDn: string | null = null;
  let { displayName = null, email = null } = input;
  if (source === 'ldap') {
    if (input.password !== undefined) {
      throw badRequest('password: directory users authenticate against the directory', { field: 'password' });
    }
    if (!config.ldap) throw ldapUnconfigured();
    const entry = await directory(findDirectoryUser(config.ldap, input.username));
    if (!entry)
      throw badRequest(`username: ${input.username} is not in the directory`, { field: 'username' });
    ldapDn = entry.dn;
    displayName ??= entry.displayName;
    email ??= entry.email;
  }
  if (await findUserByName(db, input.username))
    throw conflict('username_taken', `${input.username} already exists`);
  const passwordHash = input.password === undefined ? null : await hashPassword(input.password);
  return db.transaction().execute(async (trx) => {
    const id = await insertUser(trx, {
      username: input.username,
      source,
      password_hash: passwordHash,
      is_super_admin: input.isSuperAdmin ?? false,
      display_name: displayName,
      email,
      ldap_dn: ldapDn,
    });
    const after = mapUser((await findUser(trx, id))!);
    await audit(trx, { userId: user.id, action: 'user.create', entityType: 'user', entityId: id, after });
    return after;
  });
}

/** Everyone sees themself; pool admins and the super-admin see every user (to grant them roles). */
async function assertSeesUser(db: Database, user: AuthUser, id: number): Promise<UserRow> {
  const row = await findUser(db, id);
  if (!row || (id !== user.id && !(await canListUsers(db, user)))) throw notFound('user');
  return row;
}

export async function getUser(db: Database, user: AuthUser, id: number) {
  return mapUser(await assertSeesUser(db, user, id));
}

export async function listVisibleUsers(
  db: Database,
  user: AuthUser,
  page: { limit: number; offset: number },
) {
  const all = await canListUsers(db, user);
  const { items, total } = await listUsers(db, all ? undefined : user.id, page);
  return { total, items: items.map(mapUser) };
}

export interface PatchUserInput {
  displayName?: string | null;
  email?: string | null;
  password?: string;
  currentPassword?: string;
  isSuperAdmin?: boolean;
  disabled?: boolean;
}

/**
 * Users change their own name, email and password (giving the current one); the super-admin changes anyone's,
 * and the super-admin and disabled flags, but never removes its own (no lock-out).
 */
export async function patchUser(db: Database, user: AuthUser, id: number, input: PatchUserInput) {
  const before = await assertSeesUser(db, user, id);
  const self = id === user.id;
  if (!self && !user.isSuperAdmin) throw forbidden('only the super-admin changes other users');
  if (!user.isSuperAdmin && (input.isSuperAdmin !== undefined || input.disabled !== undefined)) {
    throw forbidden('only the super-admin changes isSuperAdmin and disabled');
  }
  if (self && (input.isSuperAdmin === false || input.disabled === true)) {
    throw conflict('self_lockout', 'the super-admin cannot demote or disable itself');
  }
  const set: Parameters<typeof updateUser>[2] = {};
  if (input.displayName !== undefined) set.display_name = input.displayName;
  if (input.email !== undefined) set.email = input.email;
  if (input.isSuperAdmin !== undefined) set.is_super_admin = input.isSuperAdmin;
  if (input.disabled !== undefined) set.disabled = input.disabled;
  if (input.password !== undefined) {
    if (before.source === 'ldap') {
      throw badRequest('password: directory users change their password in the directory', {
        field: 'password',
      });
    }
    if (self) {
      const current = await findPasswordHash(db, id);
      if (current !== null && !(await verifyPassword(current, input.currentPassword ?? ''))) {
        throw badRequest('currentPassword: wrong or missing', { field: 'currentPassword' });
      }
    }
    set.password_hash = await hashPassword(input.password);
  }
  if (!Object.keys(set).length) return mapUser(before);
  return db.transaction().execute(async (trx) => {
    const row = await updateUser(trx, id, set);
    if (input.disabled === true) await revokeAllSessions(trx, id);
    const after = mapUser(row);
    await audit(trx, {
      userId: user.id,
      action: input.password !== undefined ? 'user.update+password' : 'user.update',
      entityType: 'user',
      entityId: id,
      before: mapUser(before),
      after,
    });
    return after;
  });
}

export async function deleteUser(db: Database, user: AuthUser, id: number) {
  const before = await assertSeesUser(db, user, id);
  if (!user.isSuperAdmin) throw forbidden('only the super-admin deletes users');
  if (id === user.id) throw conflict('self_lockout', 'the super-admin cannot delete itself');
  await db.transaction().execute(async (trx) => {
    const vms = await countOwnedVms(trx, id);
    if (vms > 0)
      throw conflict('user_owns_vms', `the user owns ${vms} VMs: delete or hand them over first`, { vms });
    await deleteUserRow(trx, id);
    await audit(trx, {
      userId: user.id,
      action: 'user.delete',
      entityType: 'user',
      entityId: id,
      before: mapUser(before),
    });
  });
}

/** Directory users, marked with their herd id when already added; super-admins only. */
export async function directoryUsers(db: Database, config: Config, user: AuthUser) {
  if (!user.isSuperAdmin) throw notFound('directory');
  if (!config.ldap) throw ldapUnconfigured();
  const entries = await directory(listDirectoryUsers(config.ldap));
  const added = await userIdsByName(
    db,
    entries.map((e) => e.username),
  );
  const items = entries.map((e) => ({ ...e, userId: added.get(e.username) ?? null }));
  return { items, total: items.length };
}
