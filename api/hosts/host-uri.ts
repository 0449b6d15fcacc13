/**
 * libvirt connection URIs a user may give herd (docs/host-uris.md): parsed the way libvirt reads them
 * (`driver[+transport]://[user@][host][:port]/path[?name=value&…]`, parameter names case-insensitive and
 * percent-decoded, as virURIParse and the remote driver do), checked against an allow-list per caller, and
 * written back in one normal form: what herd stores, connects to and compares for uniqueness.
 *
 * Pure: no I/O. The caller turns a `HostUriError` into its answer.
 */
import { isIPv6 } from 'node:net';

/** Who gives the URI: the super-admin, or anyone else allowed to add hosts (pool admins, mDNS announcements). */
export type HostUriCaller = 'super-admin' | 'pool-admin';

/** `network`: a libvirtd reached over the network; `local-socket`: a Unix socket; `local`: in-process or default socket. */
export type HostUriKind = 'network' | 'local-socket' | 'local';

export type HostUriTransport = 'ssh' | 'tls' | 'tcp' | 'unix' | 'none';

export interface HostUri {
  driver: 'qemu' | 'test';
  transport: HostUriTransport;
  kind: HostUriKind;
  user?: string;
  host?: string;
  port?: number;
  /** Normalised: one leading slash, no empty, `.` or `..` segment. */
  path: string;
  /** Lower-case names, decoded values, sorted by name. */
  params: Array<[string, string]>;
  /** The URI in normal form. */
  uri: string;
}

/** A refused URI: 400 (never allowed, or not a URI herd reads) or 403 (allowed to the super-admin only). */
export class HostUriError extends Error {
  constructor(
    readonly status: 400 | 403,
    message: string,
  ) {
    super(message);
    this.name = 'HostUriError';
  }
}

const RULE = 'see docs/host-uris.md';
const refuse = (message: string) => new HostUriError(400, `uri: ${message} (${RULE})`);
const superAdminOnly = (message: string) =>
  new HostUriError(403, `uri: ${message}: only the super-admin may use it (${RULE})`);

const DEFAULT_PORT: Partial<Record<HostUriTransport, number>> = { ssh: 22, tls: 16514, tcp: 16509 };

type ParamValue = 'path' | 'flag' | { oneOf: string[] } | 'tls-priority';

interface ParamRule {
  /** Transports that read the parameter. */
  transports: HostUriTransport[];
  value: ParamValue;
  /** Reads a local file, or weakens the checks of the peer: the super-admin only. */
  superAdmin?: string;
}

/**
 * The parameters herd accepts (libvirt docs "Connection URIs", remote driver). Any other is refused: libvirt
 * passes unknown ones on to the remote end.
 */
const PARAMS: Record<string, ParamRule> = {
  mode: { transports: ['ssh', 'unix'], value: { oneOf: ['auto', 'direct', 'legacy'] } },
  // Which of libvirt's own helpers the remote end runs (virt-ssh-helper or nc); names no program.
  proxy: { transports: ['ssh'], value: { oneOf: ['auto', 'netcat', 'native'] } },
  no_tty: { transports: ['ssh'], value: 'flag' },
  socket: { transports: ['ssh', 'unix'], value: 'path', superAdmin: 'names a local socket' },
  keyfile: { transports: ['ssh'], value: 'path', superAdmin: 'reads a local key file' },
  pkipath: { transports: ['tls'], value: 'path', superAdmin: 'reads local certificate files' },
  authfile: { transports: ['ssh', 'tls', 'tcp', 'unix'], value: 'path', superAdmin: 'reads a local file' },
  no_verify: {
    transports: ['ssh', 'tls'],
    value: 'flag',
    superAdmin: "turns off the check of the host's key",
  },
  no_sanity: { transports: ['tls'], value: 'flag', superAdmin: 'turns off the certificate checks' },
  tls_priority: { transports: ['tls'], value: 'tls-priority', superAdmin: 'changes the TLS ciphers' },
};

/** Parameters that make libvirt run a program, or open another URI: refused to everyone. */
const NEVER: Record<string, string> = {
  command: 'makes libvirt run a program',
  netcat: 'makes libvirt run a program',
  name: 'makes the remote end open another URI',
  known_hosts: 'is for the libssh transports, which herd does not use',
  known_hosts_verify: 'is for the libssh transports, which herd does not use',
  sshauth: 'is for the libssh transports, which herd does not use',
};

const SEGMENT = /^[A-Za-z0-9._~+@,-]+$/;
const USER = /^[A-Za-z0-9._][A-Za-z0-9._-]{0,31}$/;
const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const QEMU_PATHS = ['/system', '/session'];

/** Parses and checks `uri` for `caller`; answers it in normal form, or throws a `HostUriError`. */
export function checkHostUri(uri: string, caller: HostUriCaller): HostUri {
  const parsed = parseHostUri(uri);
  for (const [name] of parsed.params) {
    const rule = PARAMS[name];
    if (rule.superAdmin && caller !== 'super-admin')
      throw superAdminOnly(`the parameter ${name} ${rule.superAdmin}`);
  }
  if (parsed.kind !== 'network' && caller !== 'super-admin') {
    throw superAdminOnly(
      parsed.kind === 'local-socket'
        ? `${parsed.driver}+unix opens a socket on herd's machine`
        : `${parsed.driver}:/// opens a hypervisor or file on herd's machine`,
    );
  }
  return parsed;
}

/**
 * Parses `uri` without looking at who gives it: throws a 400 `HostUriError` for anything no one may use
 * (an unknown driver, transport or parameter, a parameter that runs a program, a malformed part).
 */
export function parseHostUri(uri: string): HostUri {
  if (typeof uri !== 'string' || uri.length === 0 || uri.length > 1024) throw refuse('1 to 1024 characters');
  if (!/^[\x21-\x7e]+$/.test(uri)) throw refuse('spaces, control and non-ASCII characters are not allowed');
  if (uri.includes('#')) throw refuse('a fragment (#…) is not allowed');
  if (uri.includes('\\')) throw refuse('a backslash is not allowed');
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?]*)([^?]*)(?:\?(.*))?$/.exec(uri);
  if (!m) throw refuse('expected driver[+transport]://[user@][host][:port]/path[?parameters]');
  const [, scheme, authority, rawPath, query] = m;
  const [driverName, transportName, ...more] = scheme.toLowerCase().split('+');
  if (more.length > 0) throw refuse(`the scheme ${scheme} has more than one transport`);
  if (driverName !== 'qemu' && driverName !== 'test')
    throw refuse(`the driver ${driverName} is not qemu or test`);
  const driver = driverName;
  if (transportName === 'ext') throw refuse('the ext transport makes libvirt run a program: never allowed');
  if (transportName !== undefined && !['ssh', 'tls', 'tcp', 'unix'].includes(transportName)) {
    throw refuse(`the transport ${transportName} is not ssh, tls, tcp or unix`);
  }

  const { user, host, port } = parseAuthority(authority);
  // libvirt: no transport and a host is TLS; no transport and no host is the local driver.
  const transport: HostUriTransport =
    (transportName as HostUriTransport | undefined) ?? (host ? 'tls' : 'none');
  const kind: HostUriKind =
    transport === 'unix' ? 'local-socket' : transport === 'none' ? 'local' : 'network';
  if (kind === 'network') {
    if (!host) throw refuse(`the ${transport} transport needs a host name`);
    if (driver !== 'qemu') throw refuse(`over ${transport} herd speaks to qemu only`);
  } else if (host || user || port !== undefined) {
    throw refuse(`a ${transport === 'unix' ? 'unix socket' : 'local'} URI names no host, user or port`);
  }
  if (transport !== 'ssh' && user !== undefined) throw refuse('a user name is for the ssh transport only');

  const path = normalisePath(rawPath, 'path');
  if (driver === 'qemu' && !QEMU_PATHS.includes(path))
    throw refuse('the qemu driver path is /system or /session');
  if (driver === 'test' && path !== '/default' && !path.endsWith('.xml')) {
    throw refuse('the test driver path is /default or an absolute path to a .xml file');
  }

  const params = parseParams(query ?? '', transport);
  const normalPort = port !== undefined && port !== DEFAULT_PORT[transport] ? port : undefined;
  const scheme2 = transport === 'none' ? driver : `${driver}+${transport}`;
  const authority2 = `${user ? `${user}@` : ''}${host ?? ''}${normalPort !== undefined ? `:${normalPort}` : ''}`;
  const query2 = params.map(([n, v]) => `${n}=${encodeValue(v)}`).join('&');
  return {
    driver,
    transport,
    kind,
    ...(user !== undefined && { user }),
    ...(host !== undefined && { host }),
    ...(normalPort !== undefined && { port: normalPort }),
    path,
    params,
    uri: `${scheme2}://${authority2}${path}${query2 ? `?${query2}` : ''}`,
  };
}

function parseAuthority(authority: string): { user?: string; host?: string; port?: number } {
  if (authority === '') return {};
  if (authority.includes('%')) throw refuse('percent-encoding is not allowed in the host part');
  const at = authority.split('@');
  if (at.length > 2) throw refuse('more than one @ in the host part');
  const user = at.length === 2 ? at[0] : undefined;
  if (user !== undefined && !USER.test(user)) {
    throw refuse('a user name is letters, digits, ".", "_" and "-", not first');
  }
  const hostPort = at[at.length - 1];
  let host: string;
  let portText: string | undefined;
  const v6 = /^\[([^\]]*)\](?::(.*))?$/.exec(hostPort);
  if (v6) {
    host = v6[1].toLowerCase();
    portText = v6[2];
    if (!isIPv6(host)) throw refuse(`[${v6[1]}] is not an IPv6 address`);
    host = `[${host}]`;
  } else {
    const parts = hostPort.split(':');
    if (parts.length > 2) throw refuse('an IPv6 address goes in brackets: [::1]');
    host = parts[0].toLowerCase();
    portText = parts[1];
    const labels = host.split('.');
    if (host.length > 253 || !labels.every((l) => LABEL.test(l))) {
      throw refuse(`${JSON.stringify(parts[0])} is not a host name (letters, digits, "-" and dots)`);
    }
  }
  if (host === '' && (user !== undefined || portText !== undefined))
    throw refuse('a user or port without a host');
  let port: number | undefined;
  if (portText !== undefined) {
    port = /^\d{1,5}$/.test(portText) ? Number(portText) : Number.NaN;
    if (!(port >= 1 && port <= 65535)) throw refuse(`the port ${JSON.stringify(portText)} is not 1 to 65535`);
  }
  return {
    ...(user !== undefined && { user }),
    ...(host !== '' && { host }),
    ...(port !== undefined && { port }),
  };
}

/** An absolute path, `//` collapsed, `.` and `..` refused, each segment from a small character set. */
function normalisePath(raw: string, what: string): string {
  if (raw.includes('%')) throw refuse(`percent-encoding is not allowed in the ${what}`);
  if (!raw.startsWith('/')) throw refuse(`the ${what} must be absolute`);
  const segments = raw.split('/').filter((s) => s !== '');
  if (segments.length === 0) throw refuse(`the ${what} is empty`);
  for (const s of segments) {
    if (s === '.' || s === '..') throw refuse(`"." and ".." are not allowed in the ${what}`);
    if (!SEGMENT.test(s)) throw refuse(`the ${what} has a character outside letters, digits and ._~+@,-`);
  }
  return `/${segments.join('/')}`;
}

function parseParams(query: string, transport: HostUriTransport): Array<[string, string]> {
  if (query.includes(';')) throw refuse('";" is not allowed in the parameters (separate them with "&")');
  const seen = new Map<string, string>();
  for (const section of query.split('&')) {
    if (section === '') continue;
    const eq = section.indexOf('=');
    if (eq === 0) throw refuse('a parameter without a name');
    const name = decode(eq < 0 ? section : section.slice(0, eq)).toLowerCase();
    const value = eq < 0 ? '' : decode(section.slice(eq + 1));
    if (NEVER[name]) throw refuse(`the parameter ${name} ${NEVER[name]}: never allowed`);
    const rule = PARAMS[name];
    if (!rule) throw refuse(`the parameter ${JSON.stringify(name)} is not one herd accepts`);
    if (!rule.transports.includes(transport)) {
      throw refuse(
        `the parameter ${name} is not read by the ${transport === 'none' ? 'local' : transport} transport`,
      );
    }
    if (seen.has(name)) throw refuse(`the parameter ${name} is given twice`);
    seen.set(name, checkValue(name, rule.value, value));
  }
  return [...seen.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function checkValue(name: string, kind: ParamValue, value: string): string {
  if (kind === 'path') return normalisePath(value, `parameter ${name}`);
  if (kind === 'flag') {
    if (value !== '0' && value !== '1') throw refuse(`the parameter ${name} is 0 or 1`);
    return value;
  }
  if (kind === 'tls-priority') {
    if (!/^[A-Za-z0-9:+._!%-]{1,200}$/.test(value))
      throw refuse(`the parameter ${name} is a GnuTLS priority string`);
    return value;
  }
  const lower = value.toLowerCase();
  if (!kind.oneOf.includes(lower)) throw refuse(`the parameter ${name} is one of ${kind.oneOf.join(', ')}`);
  return lower;
}

/** Percent-decoding as libxml2 does it, strictly: a `%` must start two hex digits, and the result is printable ASCII. */
function decode(text: string): string {
  if (/%(?![0-9A-Fa-f]{2})/.test(text)) throw refuse('a "%" not followed by two hex digits');
  const decoded = text.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) =>
    String.fromCharCode(Number.parseInt(hex, 16)),
  );
  if (!/^[\x21-\x7e]*$/.test(decoded))
    throw refuse('a parameter decodes to a space, control or non-ASCII character');
  return decoded;
}

function encodeValue(value: string): string {
  return value.replace(
    /[^A-Za-z0-9._~+@,/:!-]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`,
  );
}
