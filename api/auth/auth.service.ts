import { randomBytes } from 'node:crypto';
import type { Config } from '../../lib/config.js';
import type { Logger } from '../../lib/log.js';
import { type Database, onTableWrite } from '../../schema/db.js';
import { syncLdapGrants } from '../access/permissions.service.js';
import { audit } from '../audit/audit.service.js';
import { HttpError, notFound, unauthorized } from '../http/errors.js';
import {
  findLiveSession,
  findUserById,
  findUserByUsername,
  insertSession,
  insertUser,
  listTokens,
  revokeSession,
  touchSession,
} from './auth.repository.js';
import type { AuthUser } from './auth-user.js';
import { type Negotiator, TokenRefused } from './kerberos.js';
import { ldapAuthenticate, ldapLookup } from './ldap.js';
import { hashPassword, hashSecret, newSecret, verifyPassword } from './secrets.js';

export const SESSION_COOKIE = 'herd_session';
export const CSRF_HEADER = 'x-csrf-token';
/** A login session lasts this long; API tokens choose their own expiry. */
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
export const TOKEN_DEFAULT_DAYS = 90;
export const TOKEN_MAX_DAYS = 3650;
/** last_used_at is written at most this often per credential, not on every request. */
const TOUCH_EVERY_MS = 60_000;
const DAY_MS = 24 * 60 * 60 * 1000;

export interface LoginResult {
  token: string;
  csrfToken: string;
  expiresAt: string;
  user: AuthUser;
}

const invalid = () => unauthorized('invalid username or password');

/**
 * Local users verify their argon2 hash; LDAP users bind to the directory as themselves (and get the roles of
 * the LDAP group mapping). Either way the answer to a failure is the same, and says nothing of which part failed.
 */
export async function login(
  deps: { db: Database; config: Config; log: Logger },
  username: string,
  password: string,
): Promise<LoginResult> {
  const { db, config, log } = deps;
  const user = await findUserByUsername(db, username);
  if (!user || user.disabled) {
    await verifyPassword(null, password);
    throw invalid();
  }
  if (user.source === 'local') {
    if (!(await verifyPassword(user.password_hash, password))) throw invalid();
  } else {
    if (!config.ldap) throw invalid();
    const found = await ldapAuthenticate(config.ldap, user.username, password).catch(
      directoryUnavailable(log, username),
    );
    if (!found) throw invalid();
    await syncLdapGrants(db, user.id, config.ldap.groupRoles, found.groups);
  }
  return startSession(db, user);
}

const directoryUnavailable = (log: Logger, username: string) => (err: unknown) => {
  log.warn({ err, username }, 'LDAP lookup failed');
  throw new HttpError(503, 'directory_unavailable', 'the directory could not be reached: try again later');
};

/**
 * Kerberos sign-on: the SPNEGO token (`Authorization: Negotiate <token>`) is verified with the keytab, and its
 * client principal `name@REALM` (a realm accepted, no instance) is the herd user. With a directory configured,
 * `name` is looked up there like a login name (HERD_LDAP_USER_FILTER) and the entry's user, who must have been
 * added to herd as a directory user, signs on with the roles of the group mapping; without one, the herd user
 * named `name`. Answers the session of a password login, and the token for the client's mutual authentication.
 */
export async function negotiateLogin(
  deps: { db: Database; config: Config; log: Logger },
  negotiator: Negotiator,
  token: string,
): Promise<LoginResult & { negotiateResponse: string | null }> {
  const { db, config, log } = deps;
  const accepted = await negotiator.accept(token).catch((err) => {
    if (!(err instanceof TokenRefused)) throw err;
    log.info({ reason: err.message }, 'Kerberos token refused');
    throw unauthorized(`Kerberos token refused: ${err.message}`);
  });
  const { principal } = accepted;
  const at = principal.lastIndexOf('@');
  const [name, realm] = [principal.slice(0, at), principal.slice(at + 1)];
  if (at < 0 || !negotiator.realms.includes(realm)) {
    throw unauthorized(
      `Kerberos principal ${principal}: realm not accepted here (${negotiator.realms.join(', ')})`,
    );
  }
  if (!name || name.includes('/'))
    throw unauthorized(`Kerberos principal ${principal} is not a user principal`);

  let user: Awaited<ReturnType<typeof findUserByUsername>>;
  if (config.ldap) {
    const found = await ldapLookup(config.ldap, name).catch(directoryUnavailable(log, name));
    if (!found) throw unauthorized(`Kerberos principal ${principal} has no entry in the directory`);
    user = await findUserByUsername(db, found.user.username);
    if (user?.source !== 'ldap') user = undefined;
    if (user && !user.disabled) await syncLdapGrants(db, user.id, config.ldap.groupRoles, found.groups);
  } else {
    user = await findUserByUsername(db, name);
  }
  if (!user || user.disabled) {
    throw unauthorized(`Kerberos principal ${principal} is not an enabled herd user`);
  }
  log.info({ principal, userId: user.id }, 'Kerberos sign-on');
  return { ...(await startSession(db, user)), negotiateResponse: accepted.response };
}

/** A login session for the user, as every way of logging in answers it. */
async function startSession(
  db: Database,
  user: { id: number; username: string; is_super_admin: boolean },
): Promise<LoginResult> {
  const token = newSecret();
  const csrfToken = randomBytes(24).toString('base64url');
  const expiresAt = new Date(Date.now() + SESSION_TTL_MS);
  await insertSession(db, {
    user_id: user.id,
    token_hash: hashSecret(token),
    kind: 'session',
    name: null,
    csrf_token: csrfToken,
    expires_at: expiresAt,
  });
  return {
    token,
    csrfToken,
    expiresAt: expiresAt.toISOString(),
    user: { id: user.id, username: user.username, isSuperAdmin: user.is_super_admin },
  };
}

export interface Authenticated {
  user: AuthUser;
  sessionId: number;
  kind: 'session' | 'token';
  csrfToken: string | null;
}

/**
 * Credentials found live, by token hash, for CREDENTIAL_CACHE_MS: most requests then need no lookup. A revoked or
 * expired credential, a disabled user or a changed super-admin flag therefore takes up to that long to be refused
 * when the change is made by another herd process; a change this process makes (any UPDATE or DELETE of sessions
 * or users through its database handle: logout, token revocation, user edits) empties the cache at once.
 */
export const CREDENTIAL_CACHE_MS = 5_000;
const CREDENTIAL_CACHE_SIZE = 10_000;
const credentials = new Map<string, { auth: Authenticated; until: number }>();
onTableWrite('sessions', (columns) => {
  // Noting when a credential was last used changes nothing about whether it is valid.
  if (!columns || columns.some((c) => c !== 'last_used_at')) credentials.clear();
});
onTableWrite('users', () => credentials.clear());

/** The user behind a session or API token, or null when it is unknown, revoked, expired or its user disabled. */
export async function authenticate(db: Database, token: string): Promise<Authenticated | null> {
  const hash = hashSecret(token);
  const cached = credentials.get(hash);
  if (cached && cached.until > Date.now()) return cached.auth;
  credentials.delete(hash);
  const row = await findLiveSession(db, hash);
  if (!row) return null;
  if (!row.last_used_at || Date.now() - row.last_used_at.getTime() > TOUCH_EVERY_MS)
    await touchSession(db, row.id);
  const auth: Authenticated = {
    user: { id: row.user_id, username: row.username, isSuperAdmin: row.is_super_admin },
    sessionId: row.id,
    kind: row.kind,
    csrfToken: row.csrf_token,
  };
  // Map order is insertion order: the oldest entry goes first when full.
  if (credentials.size >= CREDENTIAL_CACHE_SIZE) credentials.delete(credentials.keys().next().value!);
  credentials.set(hash, { auth, until: Date.now() + CREDENTIAL_CACHE_MS });
  return auth;
}

export async function logout(db: Database, auth: { sessionId: number; userId: number }): Promise<void> {
  await revokeSession(db, auth.sessionId, auth.userId, 'session');
}

export async function me(db: Database, user: AuthUser) {
  const row = await findUserById(db, user.id);
  if (!row) throw unauthorized();
  return {
    id: row.id,
    username: row.username,
    source: row.source,
    displayName: row.display_name,
    email: row.email,
    isSuperAdmin: row.is_super_admin,
  };
}

/** An API token for scripts: shown once, stored hashed, revocable, expiring. */
export async function issueToken(
  db: Database,
  userId: number,
  input: { name: string; expiresInDays?: number },
): Promise<{ id: number; token: string; name: string; expiresAt: string }> {
  const token = newSecret();
  const expiresAt = new Date(Date.now() + (input.expiresInDays ?? TOKEN_DEFAULT_DAYS) * DAY_MS);
  return db.transaction().execute(async (trx) => {
    const id = await insertSession(trx, {
      user_id: userId,
      token_hash: hashSecret(token),
      kind: 'token',
      name: input.name,
      csrf_token: null,
      expires_at: expiresAt,
    });
    const shown = { id, name: input.name, expiresAt: expiresAt.toISOString() };
    await audit(trx, { userId, action: 'token.create', entityType: 'token', entityId: id, after: shown });
    return { ...shown, token };
  });
}

export async function listUserTokens(db: Database, user: AuthUser, page: { limit: number; offset: number }) {
  const { items, total } = await listTokens(db, user.id, page);
  return {
    total,
    items: items.map((t) => ({
      id: t.id,
      name: t.name ?? '',
      createdAt: t.created_at.toISOString(),
      expiresAt: t.expires_at.toISOString(),
      lastUsedAt: t.last_used_at?.toISOString() ?? null,
    })),
  };
}

/** Revokes one of the caller's own tokens; another user's token "does not exist". */
export async function revokeToken(db: Database, user: AuthUser, id: number): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const revoked = await revokeSession(trx, id, user.id, 'token');
    if (!revoked) throw notFound('token');
    await audit(trx, {
      userId: user.id,
      action: 'token.revoke',
      entityType: 'token',
      entityId: id,
      before: { id, name: revoked.name, expiresAt: revoked.expires_at.toISOString() },
    });
  });
}

/**
 * Creates the super-admin `admin` with this password if no user of that name exists (HERD_ADMIN_PASSWORD at
 * start). An existing `admin` is left as it is, its password included. Returns whether it was created.
 */
export async function ensureAdmin(db: Database, password: string): Promise<boolean> {
  const passwordHash = await hashPassword(password);
  return (
    db
      .transaction()
      .execute(async (trx) => {
        if (await findUserByUsername(trx, 'admin')) return false;
        const id = await insertUser(trx, {
          username: 'admin',
          source: 'local',
          password_hash: passwordHash,
          is_super_admin: true,
        });
        await audit(trx, {
          userId: null,
          action: 'user.create',
          entityType: 'user',
          entityId: id,
          after: { id, username: 'admin', source: 'local', isSuperAdmin: true },
        });
        return true;
      })
      // Two processes starting at once: the other one created it.
      .catch((err: { code?: string }) => {
        if (err.code === '23505') return false;
        throw err;
      })
  );
}
