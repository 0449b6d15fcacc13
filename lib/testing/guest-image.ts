import { access, copyFile, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';

/** The tiny guest every real-hypervisor test boots: Debian's kernel and an initramfs of busybox-static. */
export interface GuestImage {
  kernel: string;
  initrd: string;
  kernelVersion: string;
}

/** The modules the guest needs (their dependencies come from modules.dep): virtio disk, network, balloon; ACPI button. */
const WANTED = ['virtio_pci', 'virtio_blk', 'virtio_net', 'virtio_balloon', 'button', 'evdev'];

/**
 * The guest's /init. It answers ACPI shutdown (busybox acpid runs /etc/acpi/PWRF/00000080: poweroff), takes an
 * address by DHCP (qemu's user network), keeps a shell on the serial port, prints a tick per second on its
 * screen (tty0: what a VNC console sees change) and runs what the kernel command line asks:
 * - `herd.run=<base64 shell script>`: run in the background after boot (make the guest busy, write its disk…);
 * - `herd.installed=<url>`: POST to it once up (a network install reporting back to herd);
 * - `herd.ready=<url>`: GET it once up and acpid runs (tests wait for it: qemu's user network reaches the host's
 *   loopback at 10.0.2.2).
 * `modules` are loaded in that order (dependencies first).
 */
const init = (modules: string[]) => `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mkdir -p /tmp /var/log /var/run
for m in ${modules.join(' ')}; do insmod /lib/modules/$m.ko 2>/dev/null; done
acpid -f -c /etc/acpi >/dev/ttyS0 2>&1 &
ip link set lo up
if ip link set eth0 up 2>/dev/null; then udhcpc -i eth0 -q -n -t 5 -s /etc/udhcpc.sh >/dev/null 2>&1; fi
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    herd.run=*) echo "\${arg#herd.run=}" | base64 -d > /tmp/run.sh && (sh /tmp/run.sh >/dev/ttyS0 2>&1 &) ;;
    herd.installed=*) wget -q -O /dev/null --post-data= "\${arg#herd.installed=}" && echo "herd-guest: reported installed" >/dev/ttyS0 ;;
    herd.ready=*) wget -q -O /dev/null "\${arg#herd.ready=}" ;;
  esac
done
echo "herd-guest: ready" >/dev/ttyS0
(while true; do sh </dev/ttyS0 >/dev/ttyS0 2>&1; done) &
i=0; while true; do i=$((i+1)); echo "herd-guest $(hostname) tick $i" >/dev/tty0; sleep 1; done
`;

/** udhcpc's hook: configure the lease (busybox ships none). */
const UDHCPC = `#!/bin/sh
[ "$1" = bound ] || [ "$1" = renew ] || exit 0
ip addr add "$ip/\${mask:-24}" dev "$interface"
[ -n "$router" ] && ip route add default via "\${router%% *}"
exit 0
`;

const POWER_BUTTON = `#!/bin/sh
echo "herd-guest: ACPI power button, powering off" >/dev/ttyS0
sync
poweroff -f
`;

/** Newest Debian kernel under /boot with its modules. */
export async function findKernel(): Promise<{ kernel: string; version: string }> {
  const versions = (await readdir('/boot'))
    .filter((f) => f.startsWith('vmlinuz-'))
    .map((f) => f.slice('vmlinuz-'.length))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  for (const version of versions.reverse()) {
    try {
      await access(`/lib/modules/${version}/modules.dep`);
      return { kernel: `/boot/vmlinuz-${version}`, version };
    } catch {}
  }
  throw new Error('no Debian kernel with modules under /boot: apt-get install linux-image-amd64');
}

/**
 * Builds the guest into `dir`: the kernel copied (libvirt's qemu reads it there) and an initramfs written in
 * the cpio "newc" format, gzip-compressed, from busybox-static, the modules above and the init script.
 */
export async function buildGuestImage(dir: string): Promise<GuestImage> {
  const { kernel, version } = await findKernel();
  const modulesDir = `/lib/modules/${version}`;
  const dep = await readFile(path.join(modulesDir, 'modules.dep'), 'utf8');
  const name = (file: string) => path.basename(file, '.ko');
  const modules = new Map<string, { file: string; deps: string[] }>();
  for (const line of dep.split('\n')) {
    const [file, deps = ''] = line.split(':');
    modules.set(name(file), { file, deps: deps.trim().split(/\s+/).filter(Boolean).map(name) });
  }
  const order: string[] = [];
  const visit = (m: string) => {
    if (order.includes(m)) return;
    const entry = modules.get(m);
    if (!entry) throw new Error(`kernel ${version} has no module ${m}`);
    for (const d of entry.deps) visit(d);
    order.push(m);
  };
  for (const m of WANTED) visit(m);
  const cpio = new Cpio();
  for (const d of [
    'bin',
    'dev',
    'proc',
    'sys',
    'tmp',
    'etc',
    'etc/acpi',
    'etc/acpi/PWRF',
    'lib',
    'lib/modules',
  ])
    cpio.dir(d);
  cpio.file('bin/busybox', await busybox(), 0o755);
  for (const m of order) {
    cpio.file(
      `lib/modules/${m}.ko`,
      await readFile(path.join(modulesDir, modules.get(m)?.file ?? '')),
      0o644,
    );
  }
  cpio.file('init', Buffer.from(init(order)), 0o755);
  cpio.file('etc/udhcpc.sh', Buffer.from(UDHCPC), 0o755);
  cpio.file('etc/acpi/PWRF/00000080', Buffer.from(POWER_BUTTON), 0o755);
  const initrd = path.join(dir, 'guest-initrd.gz');
  await writeFile(initrd, gzipSync(cpio.end(), { level: 1 }));
  const kernelCopy = path.join(dir, 'guest-vmlinuz');
  await copyFile(kernel, kernelCopy);
  return { kernel: kernelCopy, initrd, kernelVersion: version };
}

/** Debian's busybox-static, not the dynamically linked busybox (the initramfs has no libc). */
async function busybox(): Promise<Buffer> {
  for (const candidate of ['/bin/busybox', '/usr/bin/busybox']) {
    const binary = await readFile(candidate).catch(() => null);
    // A dynamically linked ELF names its program interpreter (ld-linux); a static one does not.
    if (binary && !binary.includes('/ld-linux')) return binary;
  }
  throw new Error('busybox-static is not installed: apt-get install busybox-static');
}

/** The cpio "newc" archive format the kernel unpacks as its initramfs (Documentation/driver-api/early-userspace). */
class Cpio {
  private chunks: Buffer[] = [];
  private ino = 1;

  dir(name: string): void {
    this.entry(name, 0o040755, Buffer.alloc(0));
  }

  file(name: string, data: Buffer, mode: number): void {
    this.entry(name, 0o100000 | mode, data);
  }

  end(): Buffer {
    this.entry('TRAILER!!!', 0, Buffer.alloc(0));
    return Buffer.concat(this.chunks);
  }

  private entry(name: string, mode: number, data: Buffer): void {
    const hex = (n: number) => n.toString(16).padStart(8, '0');
    const nameBytes = Buffer.from(`${name}\0`);
    const fields = [this.ino++, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, nameBytes.length, 0];
    const header = Buffer.from(`070701${fields.map(hex).join('')}`);
    this.push(Buffer.concat([header, nameBytes]));
    this.push(data);
  }

  /** Every header and every file's data starts on a 4-byte boundary. */
  private push(b: Buffer): void {
    this.chunks.push(b);
    const pad = (4 - (b.length % 4)) % 4;
    if (pad) this.chunks.push(Buffer.alloc(pad));
  }
}
