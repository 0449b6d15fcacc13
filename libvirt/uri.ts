/**
 * libvirt connection URIs as libvirt's remote driver reads them (src/remote/remote_driver.c, doRemoteOpen):
 * `driver[+transport]://[user@][host][:port]/path[?params]`. The transport and its parameters (`socket`, `mode`,
 * `keyfile`, `pkipath`, `no_verify`, …) stay on the client; the daemon is sent the rest, `driver:///path?other`,
 * as the name to open (so `test+unix:///default?socket=/s` opens `test:///default` on the daemon behind /s).
 * Everything that later reaches a process argument, a path or a network address is checked against an allow-list.
 */
import { LibvirtError } from './packet.js';

export type Transport = 'unix' | 'tcp' | 'tls' | 'ssh';

export interface ParsedUri {
  /** The URI as given. */
  uri: string;
  driver: string;
  transport: Transport;
  /** Host for tcp/tls/ssh; '' for a local socket. */
  host: string;
  port: number | null;
  user: string | null;
  /** The `socket` parameter: a UNIX socket path (local for unix, on the remote host for ssh). */
  socket: string | null;
  /** `mode` (legacy/direct/auto): which daemon's socket a local connection picks. */
  mode: 'auto' | 'legacy' | 'direct';
  /** The name sent in CONNECT_OPEN. */
  name: string;
  /** The remote-driver parameters that were given (keyfile, pkipath, netcat, no_verify, …). */
  params: Map<string, string>;
}

/** Parameters libvirt's remote driver consumes; they are not passed on to the daemon. */
const CLIENT_PARAMS = new Set([
  'name',
  'command',
  'socket',
  'auth',
  'sshauth',
  'netcat',
  'keyfile',
  'pkipath',
  'known_hosts',
  'known_hosts_verify',
  'tls_priority',
  'mode',
  'proxy',
  'no_sanity',
  'no_verify',
  'no_tty',
  'authfile',
]);

const DRIVER_RE = /^[a-z][a-z0-9]*$/;
const HOST_RE =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])$/;
const USER_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/;
/** Absolute paths of plain characters only: they are handed to `nc -U` on remote hosts and to connect(2). */
export const SAFE_PATH_RE = /^\/[A-Za-z0-9._+@,=/-]{0,4094}$/;

function invalid(message: string): LibvirtError {
  return new LibvirtError({ code: 8, domain: 45, message: `invalid argument: ${message}`, local: true });
}

export function parseLibvirtUri(uri: string): ParsedUri {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw invalid(`cannot parse libvirt URI ${JSON.stringify(uri)}`);
  }
  const scheme = url.protocol.replace(/:$/, '');
  const [driver, transportName, ...rest] = scheme.split('+');
  if (!DRIVER_RE.test(driver) || rest.length > 0) throw invalid(`unsupported URI scheme '${scheme}'`);
  const host = url.hostname;
  let transport: Transport;
  if (transportName === undefined) transport = host ? 'tls' : 'unix';
  else if (['unix', 'tcp', 'tls', 'ssh'].includes(transportName)) transport = transportName as Transport;
  else if (['libssh', 'libssh2', 'ext'].includes(transportName)) {
    throw invalid(`transport '${transportName}' is not supported by herd's client (use '+ssh')`);
  } else throw invalid(`unknown transport '${transportName}' in '${scheme}'`);

  if (host && !HOST_RE.test(host)) throw invalid(`host name ${JSON.stringify(host)} is not allowed`);
  if (transport === 'unix' && host) throw invalid('a unix socket URI names no host');
  if ((transport === 'tcp' || transport === 'tls' || transport === 'ssh') && !host) {
    throw invalid(`the ${transport} transport needs a host name`);
  }
  const user = url.username ? decodeURIComponent(url.username) : null;
  if (user !== null && !USER_RE.test(user)) throw invalid(`user name ${JSON.stringify(user)} is not allowed`);
  if (url.password) throw invalid('a password in the URI is not supported');
  const port = url.port ? Number(url.port) : null;

  const params = new Map<string, string>();
  const passOn: Array<[string, string]> = [];
  for (const [key, value] of url.searchParams) {
    const k = key.toLowerCase();
    if (CLIENT_PARAMS.has(k)) params.set(k, value);
    else passOn.push([key, value]);
  }
  if (params.has('command'))
    throw invalid("URI parameter 'command' is not accepted: set the ssh command in options");
  const socket = params.get('socket') ?? null;
  if (socket !== null && !SAFE_PATH_RE.test(socket)) {
    throw invalid(`socket path ${JSON.stringify(socket)} is not allowed`);
  }
  const netcat = params.get('netcat');
  if (netcat !== undefined && !SAFE_PATH_RE.test(netcat) && !/^[A-Za-z0-9._-]+$/.test(netcat)) {
    throw invalid(`netcat path ${JSON.stringify(netcat)} is not allowed`);
  }
  const modeParam = params.get('mode') ?? 'auto';
  if (modeParam !== 'auto' && modeParam !== 'legacy' && modeParam !== 'direct') {
    throw invalid(`Unknown remote mode '${modeParam}'`);
  }

  let name = params.get('name');
  if (name === undefined) {
    const query = passOn.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
    name = `${driver}://${url.pathname}${query ? `?${query}` : ''}${url.hash}`;
  }
  return {
    uri,
    driver,
    transport,
    host,
    port,
    user,
    socket,
    mode: modeParam,
    name,
    params,
  };
}

/**
 * The local UNIX socket a `driver:///path` URI reaches when it names none: the per-driver daemon's socket
 * (`virtqemud-sock`) in direct mode, libvirtd's in legacy mode, and in auto mode libvirtd's when it exists
 * (that is what a machine running the monolithic daemon has), else the per-driver one. `/session` URIs use the
 * user's runtime directory.
 */
export function defaultSocketPath(
  parsed: Pick<ParsedUri, 'driver' | 'name' | 'mode'>,
  exists: (path: string) => boolean,
  env: NodeJS.ProcessEnv = process.env,
): string {
  const session = /^[a-z0-9]+:\/\/\/session\b/.test(parsed.name);
  const base = session
    ? `${env.XDG_RUNTIME_DIR ?? `${env.HOME ?? '/root'}/.cache`}/libvirt`
    : '/var/run/libvirt';
  const legacy = `${base}/libvirt-sock`;
  const direct = `${base}/virt${parsed.driver}d-sock`;
  if (parsed.mode === 'legacy') return legacy;
  if (parsed.mode === 'direct') return direct;
  return exists(legacy) ? legacy : direct;
}

/** POSIX shell single-quoting. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The command the remote sshd runs to reach the daemon, as libvirt's ssh transport does: `nc -U socket` when a
 * socket is named, else `virt-ssh-helper NAME` where installed, falling back to `nc -U` on libvirtd's socket.
 */
export function sshRemoteCommand(parsed: ParsedUri): string {
  const nc = parsed.params.get('netcat') ?? 'nc';
  if (parsed.socket) return `${shellQuote(nc)} -U ${shellQuote(parsed.socket)}`;
  const script =
    `if command -v virt-ssh-helper >/dev/null 2>&1; then exec virt-ssh-helper ${shellQuote(parsed.name)}; ` +
    `else exec ${shellQuote(nc)} -U /var/run/libvirt/libvirt-sock; fi`;
  return `sh -c ${shellQuote(script)}`;
}
