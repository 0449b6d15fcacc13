/**
 * A libvirtd of our own that serves libvirt's test driver only, for `test:///…` hosts: libvirt's test driver lives
 * inside libvirt's client library, so a client of the RPC protocol reaches it through a daemon
 * (`test+unix:///path/host.xml?socket=…`). Everything (config, socket, pid file, log) lives in one directory the
 * caller gives; nothing of the machine's libvirt is read or written:
 *
 * - `LIBVIRT_DRIVER_DIR` names an empty directory, so the daemon loads no hypervisor, network or storage driver
 *   (the test driver is built into libvirt.so); it starts in a fraction of a second and runs nothing.
 * - Run by root, libvirtd is privileged and writes under /run/libvirt (an identity token): it runs in its own
 *   mount namespace (`unshare -m`) with a directory of ours bind-mounted over /run/libvirt, where one can be made
 *   (not in a chroot). Run by anyone else it is a session daemon, whose XDG directories point into ours.
 * - It gets the parent-death signal (`setpriv --pdeathsig`): if the process that started it dies, so does it.
 *
 * Needs Debian's `libvirt-daemon` (`/usr/sbin/libvirtd`) and util-linux (`unshare`, `setpriv`).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LibvirtClient } from './client.js';

export const LIBVIRTD = '/usr/sbin/libvirtd';

export interface LocalDaemonOptions {
  /** The daemon binary (default /usr/sbin/libvirtd). */
  binary?: string;
  /** libvirtd.conf max_clients (and max_anonymous_clients); default 5000. */
  maxClients?: number;
  /** libvirtd.conf max_workers; default 20. */
  maxWorkers?: number;
  /** How long the daemon may take to answer; default 30 s. */
  startTimeoutMs?: number;
}

export interface LocalDaemon {
  /** The daemon's read-write socket: `test+unix:///default?socket=<socket>`. */
  socket: string;
  dir: string;
  pid: number;
  /** Ends the daemon (SIGTERM, SIGKILL after 10 s). */
  stop(): Promise<void>;
}

/** `test:///path` → `test+unix:///path?socket=…`: the same test host, served by the daemon behind `socket`. */
export function testUriThroughDaemon(uri: string, socket: string): string {
  const url = new URL(uri);
  if (url.protocol !== 'test:' || url.host !== '') return uri;
  return `test+unix://${url.pathname}${url.search ? `${url.search}&` : '?'}socket=${socket}`;
}

export async function startLocalDaemon(dir: string, options: LocalDaemonOptions = {}): Promise<LocalDaemon> {
  const binary = options.binary ?? LIBVIRTD;
  await access(binary).catch(() => {
    throw new Error(
      `${binary} not found: libvirt's test driver is served by a libvirtd (apt-get install libvirt-daemon)`,
    );
  });
  const maxClients = options.maxClients ?? 5000;
  const dirs = {
    sock: path.join(dir, 'sock'),
    drivers: path.join(dir, 'no-drivers'),
    run: path.join(dir, 'run'),
    xdg: path.join(dir, 'xdg'),
  };
  for (const d of Object.values(dirs)) await mkdir(d, { recursive: true, mode: 0o700 });
  const conf = path.join(dir, 'libvirtd.conf');
  const logFile = path.join(dir, 'libvirtd.log');
  await writeFile(
    conf,
    [
      `unix_sock_dir = "${dirs.sock}"`,
      'unix_sock_rw_perms = "0700"',
      'unix_sock_ro_perms = "0700"',
      'unix_sock_admin_perms = "0700"',
      'auth_unix_rw = "none"',
      'auth_unix_ro = "none"',
      `max_clients = ${maxClients}`,
      `max_anonymous_clients = ${maxClients}`,
      'min_workers = 2',
      `max_workers = ${options.maxWorkers ?? 20}`,
      `max_client_requests = 20`,
      `log_outputs = "3:file:${logFile}"`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const pidFile = path.join(dir, 'libvirtd.pid');
  const args = ['--pdeathsig', 'TERM', '--', binary, '-f', conf, '-p', pidFile];
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    LC_ALL: 'C',
    LIBVIRT_DRIVER_DIR: dirs.drivers,
    XDG_CONFIG_HOME: path.join(dirs.xdg, 'config'),
    XDG_CACHE_HOME: path.join(dirs.xdg, 'cache'),
    XDG_STATE_HOME: path.join(dirs.xdg, 'state'),
    XDG_RUNTIME_DIR: dirs.run,
    HOME: dirs.xdg,
  };
  let child: ChildProcess;
  if (process.getuid?.() === 0 && ownMountNamespace()) {
    // Privileged: /run/libvirt must exist as a mount point (empty outside our namespace).
    await mkdir('/run/libvirt', { recursive: true });
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const script = `mount --make-rprivate / && mount --bind ${q(dirs.run)} /run/libvirt && exec setpriv ${args.map(q).join(' ')}`;
    child = spawn('unshare', ['-m', 'sh', '-c', script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  } else {
    // Not root (a session daemon), or root where no mount namespace can be made (a chroot, whose / is no mount
    // point): then the daemon's only write outside `dir` is libvirt's identity token, /run/libvirt/common/system.token,
    // which every privileged libvirt process shares (read if there, made if not).
    child = spawn('setpriv', args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  }
  let output = '';
  const collect = (b: Buffer) => {
    output = (output + b).slice(-4000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', (err) => {
      output += err.message;
      resolve();
    });
  });
  const running = () => child.exitCode === null && child.signalCode === null;
  const stop = async () => {
    if (!running()) return;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(killer);
  };

  const socket = path.join(dirs.sock, 'libvirt-sock');
  const deadline = Date.now() + (options.startTimeoutMs ?? 30_000);
  for (;;) {
    await Promise.race([exited, new Promise((r) => setTimeout(r, 100))]);
    if (!running()) {
      const log = await readFile(logFile, 'utf8').catch(() => '');
      throw new Error(`libvirtd (test driver) exited at start: ${(output || log.slice(-2000)).trim()}`);
    }
    const up = await LibvirtClient.connect(`test+unix:///default?socket=${socket}`, {
      callTimeoutMs: 5_000,
      connectTimeoutMs: 5_000,
    }).then(
      (c) => c.close().then(() => true),
      () => false,
    );
    if (up) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`libvirtd (test driver) did not answer on ${socket}: ${output.trim()}`);
    }
  }
  return { socket, dir, pid: child.pid ?? 0, stop };
}

/** Whether this process may run a command in a mount namespace of its own with private propagation. */
function ownMountNamespace(): boolean {
  return spawnSync('unshare', ['-m', 'true'], { stdio: 'ignore' }).status === 0;
}
