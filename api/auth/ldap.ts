import { Client, type Entry, escapeFilter, InvalidCredentialsError } from 'ldapts';
import type { Config } from '../../lib/config.js';

export type LdapConfig = NonNullable<Config['ldap']>;

export interface DirectoryUser {
  dn: string;
  username: string;
  displayName: string | null;
  email: string | null;
}

/** Bounded waits: a directory that stops answering must not hold a login forever. */
const TIMEOUT_MS = 5000;
const MAX_LISTED = 1000;

/** The configured user filter (`(uid={username})`) with the value escaped as RFC 4515 asks. */
function userFilter(template: string, username: string): string {
  const parts = template.split('{username}');
  const strings = Object.assign([...parts], { raw: [...parts] }) as unknown as TemplateStringsArray;
  return escapeFilter(strings, ...parts.slice(1).map(() => username));
}

function first(value: Entry[string] | undefined): string | null {
  const v = Array.isArray(value) ? value[0] : value;
  return v === undefined ? null : String(v);
}

function toUser(cfg: LdapConfig, entry: Entry): DirectoryUser | null {
  const username = first(entry[cfg.usernameAttribute]);
  if (!username) return null;
  return {
    dn: entry.dn,
    username,
    displayName: first(entry.cn) ?? first(entry.displayName),
    email: first(entry.mail),
  };
}

/** Runs `work` on a client bound with the service account (anonymous when no bind DN is configured). */
async function withServiceBind<T>(cfg: LdapConfig, work: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ url: cfg.url, timeout: TIMEOUT_MS, connectTimeout: TIMEOUT_MS });
  try {
    if (cfg.bindDn) await client.bind(cfg.bindDn, cfg.bindPassword ?? '');
    return await work(client);
  } finally {
    await client.unbind().catch(() => undefined);
  }
}

async function findEntry(client: Client, cfg: LdapConfig, username: string): Promise<DirectoryUser | null> {
  const { searchEntries } = await client.search(cfg.baseDn, {
    scope: 'sub',
    filter: userFilter(cfg.userFilter, username),
    attributes: [cfg.usernameAttribute, 'cn', 'displayName', 'mail'],
    sizeLimit: 2,
  });
  // Two entries for one username would make the login ambiguous: refuse rather than pick one.
  if (searchEntries.length !== 1) return null;
  return toUser(cfg, searchEntries[0]);
}

export async function findDirectoryUser(cfg: LdapConfig, username: string): Promise<DirectoryUser | null> {
  return withServiceBind(cfg, (client) => findEntry(client, cfg, username));
}

/** Users of the directory under the base DN (the user filter with `*` for the username), by username. */
export async function listDirectoryUsers(cfg: LdapConfig): Promise<DirectoryUser[]> {
  return withServiceBind(cfg, async (client) => {
    const { searchEntries } = await client.search(cfg.baseDn, {
      scope: 'sub',
      filter: cfg.userFilter.replaceAll('{username}', '*'),
      attributes: [cfg.usernameAttribute, 'cn', 'displayName', 'mail'],
      sizeLimit: MAX_LISTED,
    });
    return searchEntries
      .map((e) => toUser(cfg, e))
      .filter((u): u is DirectoryUser => u !== null)
      .sort((a, b) => a.username.localeCompare(b.username));
  });
}

/**
 * Finds the user's entry with the service bind, then binds as that entry with the password. Returns the entry
 * and the configured groups (HERD_LDAP_GROUP_ROLES) the user belongs to, or null when the credentials are wrong.
 */
export async function ldapAuthenticate(
  cfg: LdapConfig,
  username: string,
  password: string,
): Promise<{ user: DirectoryUser; groups: string[] } | null> {
  // An empty password is an unauthenticated bind (RFC 4513 §5.1.2), which servers accept: never a login.
  if (!password) return null;
  return withServiceBind(cfg, async (client) => {
    const user = await findEntry(client, cfg, username);
    if (!user) return null;
    const asUser = new Client({ url: cfg.url, timeout: TIMEOUT_MS, connectTimeout: TIMEOUT_MS });
    try {
      await asUser.bind(user.dn, password);
    } catch (err) {
      if (err instanceof InvalidCredentialsError) return null;
      throw err;
    } finally {
      await asUser.unbind().catch(() => undefined);
    }
    return { user, groups: await memberOf(client, cfg, user) };
  });
}

/**
 * The user's entry and configured groups, found with the service bind alone: for a sign-on the directory does
 * not check itself (a Kerberos ticket already proved who the user is). Null when there is no single entry.
 */
export async function ldapLookup(
  cfg: LdapConfig,
  username: string,
): Promise<{ user: DirectoryUser; groups: string[] } | null> {
  return withServiceBind(cfg, async (client) => {
    const user = await findEntry(client, cfg, username);
    return user ? { user, groups: await memberOf(client, cfg, user) } : null;
  });
}

/** The configured groups (HERD_LDAP_GROUP_ROLES) the user is a member of. */
async function memberOf(client: Client, cfg: LdapConfig, user: DirectoryUser): Promise<string[]> {
  const groups: string[] = [];
  for (const { groupDn } of cfg.groupRoles) {
    const { searchEntries } = await client
      .search(groupDn, {
        scope: 'base',
        filter: escapeFilter`(|(member=${user.dn})(uniqueMember=${user.dn})(memberUid=${user.username}))`,
        attributes: ['1.1'],
      })
      .catch(() => ({ searchEntries: [] }));
    if (searchEntries.length) groups.push(groupDn);
  }
  return groups;
}
