import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A real libvirtd with the QEMU driver, everything under a temporary directory. */
export interface Libvirtd {
  /** `qemu+unix:///system?socket=…`: what herd, virsh and collectd's virt plugin connect to. */
  uri: string;
  socket: string;
  dir: string;
  /** The host UUID this libvirtd reports (libvirtd.conf `host_uuid`): two on one machine may migrate. */
  hostUuid: string;
  /** `kvm` where the suite proved KVM by booting (lib/testing/kvm-probe.ts), else `qemu` (TCG). */
  domainType: 'kvm' | 'qemu';
  virsh(...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

/** The libvirt directories a privileged libvirtd uses; each instance gets its own, bind-mounted over them. */
const STATE_DIRS = {
  etc: '/etc/libvirt',
  run: '/run/libvirt',
  lib: '/var/lib/libvirt',
  cache: '/var/cache/libvirt',
  log: '/var/log/libvirt',
};

/**
 * Starts a privileged libvirtd (root) in its own mount namespace (`unshare -m`), with its config, state, logs
 * and sockets under `dir`: /etc/libvirt, /run/libvirt, /var/lib/libvirt, … are bind-mounted from `dir` inside
 * that namespace only, so several instances run side by side and nothing of the machine's libvirt is touched.
 * The socket directory is outside the bind mounts, so every process reaches it. Guests get distinct VNC and
 * migration port ranges per instance (`index`). No virtlogd (qemu writes its log itself), no security driver,
 * no firewall: guests use qemu's user-mode network, which touches only loopback. Without `kvm` (the machine's
 * /dev/kvm did not boot a guest), an empty read-only file is bound over /dev/kvm inside the namespace, so this
 * libvirtd offers only TCG, as on a machine without KVM.
 */
export async function startLibvirtd(
  dir: string,
  options: {
    index: number;
    hostUuid: string;
    kvm: boolean;
    log?: (line: string) => void;
    /** More libvirtd.conf lines (e.g. `listen_tcp = 1`, `tcp_port = "…"`, TLS files); each replaces a default of its key. */
    conf?: string[];
    /** Start with `--listen`: libvirtd opens the TCP/TLS listeners its conf enables. */
    listen?: boolean;
  },
): Promise<Libvirtd> {
  await access('/usr/sbin/libvirtd').catch(() => {
    throw new Error('libvirtd is not installed: apt-get install libvirt-daemon-system qemu-system-x86');
  });
  for (const d of [...Object.keys(STATE_DIRS), 'sock']) await mkdir(path.join(dir, d), { recursive: true });
  // The mount points must exist on the machine; they stay empty outside the namespaces.
  for (const target of Object.values(STATE_DIRS)) await mkdir(target, { recursive: true });
  const sockDir = path.join(dir, 'sock');
  const vnc = 20000 + options.index * 200;
  const migration = 49200 + options.index * 50;
  await writeFile(
    path.join(dir, 'etc', 'libvirtd.conf'),
    [
      `unix_sock_dir = "${sockDir}"`,
      'unix_sock_rw_perms = "0700"',
      'auth_unix_rw = "none"',
      'auth_unix_ro = "none"',
      `host_uuid = "${options.hostUuid}"`,
      `log_outputs = "3:file:${path.join(dir, 'log', 'libvirtd.log')}"`,
    ]
      // A key in `conf` replaces the line above that sets it.
      .filter(
        (line) => !(options.conf ?? []).some((c) => c.split('=')[0].trim() === line.split('=')[0].trim()),
      )
      .concat(options.conf ?? [], '')
      .join('\n'),
  );
  await writeFile(
    path.join(dir, 'etc', 'qemu.conf'),
    [
      'user = "root"',
      'group = "root"',
      'dynamic_ownership = 0',
      'security_driver = "none"',
      // No private /dev per guest: libvirt would try to move the read-only file hiding /dev/kvm (below) into it.
      'namespaces = []',
      'stdio_handler = "file"',
      'vnc_listen = "127.0.0.1"',
      `remote_display_port_min = ${vnc}`,
      `remote_display_port_max = ${vnc + 199}`,
      `migration_port_min = ${migration}`,
      `migration_port_max = ${migration + 49}`,
      '',
    ].join('\n'),
  );
  const mounts = Object.entries(STATE_DIRS)
    .map(([name, target]) => `mount --bind '${path.join(dir, name)}' '${target}'`)
    .join(' && ');
  // A read-only empty file over /dev/kvm: libvirt then finds it unusable (EROFS, even for root) and keeps its
  // capabilities cache (/dev/null would open, and its ctime moves with every write: a re-probe at every call).
  const noKvm = path.join(dir, 'no-kvm');
  if (!options.kvm) await writeFile(noKvm, '');
  const hideKvm = options.kvm
    ? ''
    : `{ [ ! -e /dev/kvm ] || { mount --bind '${noKvm}' /dev/kvm && mount -o remount,bind,ro /dev/kvm; }; } && `;
  const script = `mount --make-rprivate / && ${mounts} && ${hideKvm}exec /usr/sbin/libvirtd ${options.listen ? '--listen ' : ''}-f /etc/libvirt/libvirtd.conf -p '${path.join(dir, 'libvirtd.pid')}'`;
  const child: ChildProcess = spawn('unshare', ['-m', 'sh', '-c', script], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (b: Buffer) => {
    output += b;
    options.log?.(String(b));
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const socket = path.join(sockDir, 'libvirt-sock');
  const uri = `qemu+unix:///system?socket=${socket}`;
  const virsh = async (...args: string[]) => {
    const { stdout } = await run('virsh', ['-q', '-c', uri, ...args], { timeout: 120_000 });
    return stdout;
  };
  const started = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`libvirtd exited (${child.exitCode}): ${output.trim()}`);
    const up = await virsh('version').then(
      () => true,
      () => false,
    );
    if (up) break;
    if (Date.now() - started > 30_000) {
      child.kill('SIGKILL');
      const log = await readFile(path.join(dir, 'log', 'libvirtd.log'), 'utf8').catch(() => '');
      throw new Error(`libvirtd did not answer within 30 s: ${output.trim()} ${log.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const domainType = options.kvm ? 'kvm' : 'qemu';

  return {
    uri,
    socket,
    dir,
    hostUuid: options.hostUuid,
    domainType,
    virsh,
    async stop() {
      if (child.exitCode !== null) return;
      // qemu outlives libvirtd: stop the guests first.
      const names = (await virsh('list', '--name').catch(() => '')).split('\n').filter(Boolean);
      await Promise.all(names.map((n) => virsh('destroy', n).catch(() => undefined)));
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
      // A guest libvirtd did not get to (it was killed mid-start, say) is ended by its pid file.
      const pids = await run('sh', [
        '-c',
        `cat '${path.join(dir, 'run')}'/qemu/*.pid 2>/dev/null || true`,
      ]).then((r) => r.stdout.split(/\s+/).filter(Boolean));
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {}
      }
    },
  };
}
