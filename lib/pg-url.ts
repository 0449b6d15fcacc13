/**
 * libpq's connection URIs with several hosts, which node-postgres does not read by itself:
 *
 *   postgres://user:secret@db1:5432,db2:5433/herd?target_session_attrs=read-write&connect_timeout=5
 *
 * The rules are libpq's (PostgreSQL's "Connection URIs"): `postgres://` or `postgresql://`; user, password,
 * hosts, database name and parameter values percent-decoded (a host `%2Fvar%2Frun%2Fpostgresql` is a Unix socket
 * directory, `[::1]` an IPv6 address); a comma-separated host list, each host with its own port or none (5432);
 * `host=` and `port=` parameters replace those of the authority, and a single `port` applies to every host;
 * `target_session_attrs` one of `any` (the default), `read-write`, `read-only`, `primary`, `standby`,
 * `prefer-standby`. Other parameters (sslmode, application_name, …) are kept for node-postgres.
 */

export const TARGET_SESSION_ATTRS = [
  'any',
  'read-write',
  'read-only',
  'primary',
  'standby',
  'prefer-standby',
] as const;
export type TargetSessionAttrs = (typeof TARGET_SESSION_ATTRS)[number];

export const DEFAULT_PG_PORT = 5432;

export interface PgHost {
  /** A name, an IP address (IPv6 without brackets) or a Unix socket directory (starts with `/`); '' for pg's default. */
  host: string;
  port: number;
}

export interface PgTarget {
  hosts: PgHost[];
  user?: string;
  password?: string;
  database?: string;
  targetSessionAttrs: TargetSessionAttrs;
  /** libpq's `connect_timeout` in seconds (0: wait as long as it takes); undefined when not given. */
  connectTimeoutSeconds?: number;
  /** The other parameters, decoded, for node-postgres. */
  params: Record<string, string>;
}

export class PgUrlError extends Error {
  override name = 'PgUrlError';
}

/** True when the URL names several hosts or a target_session_attrs: what `parsePgUrl` is for. */
export function isMultiHostUrl(url: string): boolean {
  const m = /^postgres(?:ql)?:\/\/([^/?#]*)(?:[/?#]|$)/i.exec(url);
  if (!m) return false;
  const authority = m[1]!.slice(m[1]!.lastIndexOf('@') + 1);
  return (
    authority.includes(',') ||
    /[?&]target_session_attrs=/i.test(url) ||
    /[?&](host|port)=[^&#]*(,|%2C)/i.test(url)
  );
}

/** Parses a libpq connection URI; throws PgUrlError (which never repeats the password) when it is not one. */
export function parsePgUrl(url: string): PgTarget {
  const m = /^postgres(?:ql)?:\/\/([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?$/i.exec(url);
  if (!m) throw new PgUrlError('a PostgreSQL URL starts with postgres:// or postgresql://');
  const [, authority = '', dbPath = '', query = ''] = m;
  const at = authority.lastIndexOf('@');
  const target: PgTarget = { hosts: [], targetSessionAttrs: 'any', params: {} };
  if (at >= 0) {
    const userinfo = authority.slice(0, at);
    const colon = userinfo.indexOf(':');
    const user = decode(colon < 0 ? userinfo : userinfo.slice(0, colon), 'user name');
    if (user) target.user = user;
    if (colon >= 0) target.password = decode(userinfo.slice(colon + 1), 'password');
  }
  let hosts: string[] = [];
  let ports: string[] = [];
  for (const spec of splitHosts(authority.slice(at + 1))) {
    hosts.push(spec.host);
    ports.push(spec.port);
  }
  const database = decode(dbPath.replace(/^\//, ''), 'database name');
  if (database) target.database = database;

  for (const pair of query ? query.split('&') : []) {
    if (!pair) continue;
    const eq = pair.indexOf('=');
    if (eq < 0) throw new PgUrlError(`URL parameter "${safe(pair)}" has no "="`);
    const key = decode(pair.slice(0, eq), 'parameter name');
    const value = decode(pair.slice(eq + 1), `parameter ${safe(key)}`);
    switch (key) {
      case 'host':
        hosts = value.split(',');
        break;
      case 'port':
        ports = value.split(',');
        break;
      case 'user':
        target.user = value;
        break;
      case 'password':
        target.password = value;
        break;
      case 'dbname':
        target.database = value;
        break;
      case 'target_session_attrs':
        if (!(TARGET_SESSION_ATTRS as readonly string[]).includes(value))
          throw new PgUrlError(
            `invalid target_session_attrs "${safe(value)}": one of ${TARGET_SESSION_ATTRS.join(', ')}`,
          );
        target.targetSessionAttrs = value as TargetSessionAttrs;
        break;
      case 'connect_timeout': {
        if (!/^\d+$/.test(value.trim())) throw new PgUrlError(`invalid connect_timeout "${safe(value)}"`);
        const seconds = Number(value.trim());
        // libpq: 0 waits forever; a positive value below 2 is taken as 2.
        target.connectTimeoutSeconds = seconds === 0 ? 0 : Math.max(2, seconds);
        break;
      }
      default:
        target.params[key] = value;
    }
  }

  if (hosts.length === 0) hosts = [''];
  if (ports.length === 0) ports = [''];
  if (ports.length !== 1 && ports.length !== hosts.length)
    throw new PgUrlError(`could not match ${ports.length} port numbers to ${hosts.length} hosts`);
  target.hosts = hosts.map((host, i) => ({ host, port: portOf(ports.length === 1 ? ports[0]! : ports[i]!) }));
  return target;
}

/** The host list as libpq's URI writes it: `a:5432,[::1]:5433,%2Ftmp:5432`. */
export function formatHosts(hosts: readonly PgHost[]): string {
  return hosts
    .map(({ host, port }) => `${host.includes(':') ? `[${host}]` : encodeURIComponent(host)}:${port}`)
    .join(',');
}

/** The URL without its password, for logs and errors. */
export function redactPgUrl(target: PgTarget): string {
  const user = target.user ? `${encodeURIComponent(target.user)}@` : '';
  return `postgres://${user}${formatHosts(target.hosts)}/${encodeURIComponent(target.database ?? '')}`;
}

function splitHosts(hostspec: string): Array<{ host: string; port: string }> {
  if (hostspec === '') return [];
  const out: Array<{ host: string; port: string }> = [];
  for (const part of hostspec.split(',')) {
    if (part.startsWith('[')) {
      const close = part.indexOf(']');
      if (close < 0) throw new PgUrlError(`unterminated IPv6 address "${safe(part)}"`);
      const rest = part.slice(close + 1);
      if (rest !== '' && !rest.startsWith(':'))
        throw new PgUrlError(`unexpected "${safe(rest)}" after an IPv6 address`);
      out.push({ host: decode(part.slice(1, close), 'host'), port: rest.slice(1) });
    } else {
      const colon = part.indexOf(':');
      out.push({
        host: decode(colon < 0 ? part : part.slice(0, colon), 'host'),
        port: colon < 0 ? '' : part.slice(colon + 1),
      });
    }
  }
  return out;
}

function portOf(text: string): number {
  const trimmed = text.trim();
  if (trimmed === '') return DEFAULT_PG_PORT;
  const port = Number(trimmed);
  if (!/^\d+$/.test(trimmed) || port < 1 || port > 65535)
    throw new PgUrlError(`invalid port number "${safe(trimmed)}"`);
  return port;
}

function decode(text: string, what: string): string {
  if (/%00/.test(text)) throw new PgUrlError(`forbidden value %00 in the ${what}`);
  try {
    return decodeURIComponent(text);
  } catch {
    throw new PgUrlError(`invalid percent-encoding in the ${what}`);
  }
}

/** A piece of the URL quoted in an error: short, and only when it cannot be the password. */
function safe(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}
