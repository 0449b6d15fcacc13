/**
 * Transports: each dials one byte stream to a libvirt daemon. UNIX socket, TCP, TLS (libvirt's pki layout), and
 * SSH through the system `ssh` client running `nc -U`/`virt-ssh-helper` on the remote host, one tunnel process
 * per connection (the way libvirt's own `+ssh` transport works, so ~/.ssh/config, agents and known_hosts behave
 * as an operator expects from virsh).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { ErrorCode, ErrorDomain, LibvirtError } from './packet.js';
import { defaultSocketPath, type ParsedUri, sshRemoteCommand } from './uri.js';

/** A dialed connection: a duplex byte stream, plus where it goes (for messages). */
export interface Dialed {
  stream: Duplex;
  /** e.g. `unix:/run/libvirt/libvirt-sock`, `tls:host:16514`, `ssh:user@host`. */
  peer: string;
  /** Extra text for errors when the stream ends early (e.g. ssh's stderr). */
  diagnostics?: () => string;
  /**
   * Write each message on its own (never coalesced with the next one into one write). libvirtd's TLS reader
   * leaves a second message that arrived in the same TLS record unread until more bytes arrive (seen with
   * libvirt 9.0: three concurrent calls took 5 s, until a keepalive ping came).
   */
  oneMessagePerWrite?: boolean;
}

/** Opens one byte stream to a daemon; aborting the signal abandons the attempt. */
export interface Dialer {
  dial(signal: AbortSignal): Promise<Dialed>;
}

/** libvirt's pki layout (virnettlscontext.c) for a privileged client; `pkipath` or options override it. */
export const DEFAULT_PKI = {
  ca: '/etc/pki/CA/cacert.pem',
  cert: '/etc/pki/libvirt/clientcert.pem',
  key: '/etc/pki/libvirt/private/clientkey.pem',
};

export interface TransportOptions {
  /** Certificate files for `+tls`; default libvirt's pki layout, or `<pkipath>/{cacert,clientcert,clientkey}.pem`. */
  tls?: { ca?: string; cert?: string; key?: string };
  /** For `+ssh`: the ssh binary (default `ssh`), an identity file, a known-hosts file, `-o` options. */
  ssh?: {
    command?: string;
    identityFile?: string;
    knownHostsFile?: string;
    options?: Record<string, string>;
  };
  /** How long a dial may take before it fails (default 15 s). */
  connectTimeoutMs?: number;
}

const LIBVIRTD_TCP_PORT = 16509;
const LIBVIRTD_TLS_PORT = 16514;

function systemError(message: string): LibvirtError {
  return new LibvirtError({ code: ErrorCode.SYSTEM_ERROR, domain: ErrorDomain.RPC, message, local: true });
}

function socketDial(
  connect: () => net.Socket,
  ready: 'connect' | 'secureConnect',
  describe: string,
  signal: AbortSignal,
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = connect();
    const fail = (err: Error) => {
      cleanup();
      sock.destroy();
      reject(
        err instanceof LibvirtError ? err : systemError(`Failed to connect to ${describe}: ${err.message}`),
      );
    };
    const onAbort = () => fail(systemError(`Failed to connect to ${describe}: timed out`));
    const ok = () => {
      cleanup();
      resolve(sock);
    };
    const cleanup = () => {
      sock.off('error', fail);
      sock.off(ready, ok);
      signal.removeEventListener('abort', onAbort);
    };
    sock.once('error', fail);
    sock.once(ready, ok);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
}

export function dialerFor(parsed: ParsedUri, options: TransportOptions = {}): Dialer {
  switch (parsed.transport) {
    case 'unix': {
      if (!parsed.socket && parsed.driver === 'test') {
        throw new LibvirtError({
          code: ErrorCode.INVALID_ARG,
          domain: ErrorDomain.REMOTE,
          local: true,
          message:
            "invalid argument: libvirt's test driver runs inside its client; herd reaches it through a libvirtd: " +
            'test+unix:///default?socket=/path/to/libvirt-sock',
        });
      }
      return {
        async dial(signal) {
          // Chosen at each dial: after a restart the machine may run the other daemon.
          const path = parsed.socket ?? defaultSocketPath(parsed, existsSync);
          const sock = await socketDial(
            () => net.createConnection({ path }),
            'connect',
            `socket '${path}'`,
            signal,
          );
          return { stream: sock, peer: `unix:${path}` };
        },
      };
    }
    case 'tcp': {
      const port = parsed.port ?? LIBVIRTD_TCP_PORT;
      const host = parsed.host.replace(/^\[|\]$/g, '');
      return {
        async dial(signal) {
          const sock = await socketDial(
            () => net.createConnection({ host, port }),
            'connect',
            `${parsed.host}:${port}`,
            signal,
          );
          sock.setNoDelay(true);
          return { stream: sock, peer: `tcp:${parsed.host}:${port}` };
        },
      };
    }
    case 'tls': {
      const port = parsed.port ?? LIBVIRTD_TLS_PORT;
      const host = parsed.host.replace(/^\[|\]$/g, '');
      const pki = parsed.params.get('pkipath');
      const files = {
        ca: options.tls?.ca ?? (pki ? `${pki}/cacert.pem` : DEFAULT_PKI.ca),
        cert: options.tls?.cert ?? (pki ? `${pki}/clientcert.pem` : DEFAULT_PKI.cert),
        key: options.tls?.key ?? (pki ? `${pki}/clientkey.pem` : DEFAULT_PKI.key),
      };
      const verify = (parsed.params.get('no_verify') ?? '0') === '0';
      return {
        async dial(signal) {
          const [ca, cert, key] = await Promise.all(
            [files.ca, files.cert, files.key].map((f) =>
              readFile(f).catch((err: NodeJS.ErrnoException) => {
                throw systemError(`Cannot read TLS file '${f}': ${err.code ?? err.message}`);
              }),
            ),
          );
          const sock = await socketDial(
            () =>
              tls.connect({
                host,
                port,
                ca,
                cert,
                key,
                servername: net.isIP(host) ? undefined : host,
                rejectUnauthorized: verify,
              }),
            'secureConnect',
            `${parsed.host}:${port}`,
            signal,
          );
          sock.setNoDelay(true);
          await tlsCheckByte(sock, `${parsed.host}:${port}`, signal);
          return { stream: sock, peer: `tls:${parsed.host}:${port}`, oneMessagePerWrite: true };
        },
      };
    }
    case 'ssh':
      return sshDialer(parsed, options);
  }
}

/**
 * After the TLS handshake libvirtd sends one byte before any RPC: 1 when it accepted our certificate (and
 * address), 0 when not (virnetserverclient.c / virnetclient.c).
 */
function tlsCheckByte(sock: net.Socket, describe: string, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const failed = () =>
      systemError(`server verification (of our certificate or IP address) failed: ${describe}`);
    const done = (err?: LibvirtError) => {
      sock.off('data', onData);
      sock.off('close', onClose);
      signal.removeEventListener('abort', onAbort);
      if (err) {
        sock.destroy();
        reject(err);
      } else resolve();
    };
    const onData = (chunk: Buffer) => {
      sock.pause();
      if (chunk.length > 1) sock.unshift(chunk.subarray(1));
      done(chunk[0] === 1 ? undefined : failed());
    };
    const onClose = () => done(failed());
    const onAbort = () => done(systemError(`Failed to connect to ${describe}: timed out`));
    sock.on('data', onData);
    sock.once('close', onClose);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function sshDialer(parsed: ParsedUri, options: TransportOptions): Dialer {
  const ssh = options.ssh ?? {};
  const args = ['-T', '-e', 'none', '-o', 'BatchMode=yes'];
  if (parsed.port) args.push('-p', String(parsed.port));
  if (parsed.user) args.push('-l', parsed.user);
  const keyfile = ssh.identityFile ?? parsed.params.get('keyfile');
  if (keyfile) args.push('-i', keyfile);
  if (ssh.knownHostsFile) args.push('-o', `UserKnownHostsFile=${ssh.knownHostsFile}`);
  if ((parsed.params.get('no_verify') ?? '0') !== '0') args.push('-o', 'StrictHostKeyChecking=no');
  for (const [k, v] of Object.entries(ssh.options ?? {})) args.push('-o', `${k}=${v}`);
  args.push('--', parsed.host.replace(/^\[|\]$/g, ''), sshRemoteCommand(parsed));
  const command = ssh.command ?? 'ssh';
  const peer = `ssh:${parsed.user ? `${parsed.user}@` : ''}${parsed.host}`;
  return {
    dial(signal) {
      return new Promise((resolve, reject) => {
        const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => {
          stderr = (stderr + d.toString()).slice(-2000);
        });
        const stream = Duplex.from({ readable: child.stdout, writable: child.stdin });
        // Ending the stream ends the tunnel: the ssh process is ours alone.
        stream.on('close', () => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        });
        child.once('exit', () => stream.destroy());
        const onError = (err: Error) => {
          signal.removeEventListener('abort', onAbort);
          reject(systemError(`Cannot run '${command}' for ${peer}: ${err.message}`));
        };
        const onAbort = () => {
          child.kill('SIGTERM');
          reject(systemError(`Failed to connect to ${peer}: timed out ${stderr.trim()}`.trim()));
        };
        child.once('error', onError);
        signal.addEventListener('abort', onAbort, { once: true });
        child.once('spawn', () => {
          child.off('error', onError);
          child.on('error', () => stream.destroy());
          signal.removeEventListener('abort', onAbort);
          resolve({ stream, peer, diagnostics: () => stderr.trim() });
        });
      });
    },
  };
}
