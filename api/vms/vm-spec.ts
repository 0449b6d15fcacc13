import { randomBytes } from 'node:crypto';
import { USER_NETWORK } from '../hosts/driver/domain-xml.js';
import type { DomainSpec, IscsiDiskSource, VirtTypeSetting } from '../hosts/driver/index.js';
import { chapSecretUsage, initiatorIqn, lunOfVolume } from '../hosts/driver/storage-xml.js';
import { effectiveLimits, ioLimits, type LimitRow } from './limits.js';

/** KVM's locally administered prefix: herd's MACs are 52:54:00 and three random bytes. */
export const MAC_PREFIX = '52:54:00';

export function randomMac(): string {
  return [MAC_PREFIX, ...[...randomBytes(3)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

/** The libvirt domain name of a herd VM: unique on a host although VM names are only unique per pool. */
export function domainName(vm: { id: number; name: string }): string {
  return `herd-${vm.id}-${vm.name}`;
}

export interface VmRecordForSpec extends Partial<LimitRow> {
  id: number;
  uuid: string;
  name: string;
  vcpus: number;
  memory_mib: number;
  boot_network: boolean;
  boot_kernel?: string | null;
  boot_initrd?: string | null;
  boot_cmdline?: string | null;
  virt_type?: 'kvm' | 'qemu' | null;
}

export interface VolumeForSpec {
  name: string;
  path: string | null;
  /** The volume's storage pool: herd's type (`iscsi`, …), libvirt name and parameters. */
  storage_type?: string;
  storage_name?: string;
  storage_params?: Record<string, unknown>;
}

/** A LUN of a herd iSCSI pool as qemu reaches it: the pool's portal and target, CHAP through the host's secret. */
function iscsiDiskSource(v: VolumeForSpec): IscsiDiskSource {
  const p = v.storage_params ?? {};
  const lun = lunOfVolume(v.name);
  if (lun === null || typeof p.portal !== 'string' || typeof p.targetIqn !== 'string' || !v.storage_name) {
    throw new Error(`volume ${v.name} is not a LUN of an iSCSI pool herd defined`);
  }
  return {
    portal: p.portal,
    port: typeof p.port === 'number' ? p.port : 3260,
    targetIqn: p.targetIqn,
    lun,
    initiatorIqn: initiatorIqn(v.storage_name),
    ...(typeof p.chapUsername === 'string'
      ? { chap: { username: p.chapUsername, secretUsage: chapSecretUsage(v.storage_name) } }
      : {}),
  };
}

export interface ImageForSpec {
  name: string;
  /** Set for an ISO image: the install medium's path. */
  iso_path: string | null;
  iso_volume_id: number | null;
}

/**
 * The domain herd defines from its own record: disks from the attached volumes, NICs with their MACs, and
 * the boot order. While installing (`boot_network`), a network-install image boots from the network first
 * (herd serves its iPXE script by MAC) and an ISO image from its CD-ROM first; afterwards from disk.
 * `name` keeps the name a host already knows the domain by (e.g. a domain herd adopted). On qemu's user network
 * nobody else answers DHCP, so with `pxeBaseUrl` (where guests reach herd) the first NIC there is given herd's
 * iPXE script for its MAC as its boot file while the VM installs from a network image.
 */
export function buildDomainSpec(
  vm: VmRecordForSpec,
  parts: {
    volumes: Array<VolumeForSpec>;
    nics: Array<{ mac: string; network: string }>;
    /** The limits of the VM's pool. */
    poolLimits?: Partial<LimitRow>;
    /** The setting of the host it is defined on; the VM's own `virt_type` wins. */
    hostVirtType?: VirtTypeSetting;
  },
  image: ImageForSpec | undefined,
  name = domainName(vm),
  pxeBaseUrl?: string,
): DomainSpec {
  const disks: DomainSpec['disks'] = parts.volumes.map((v) => {
    if (!v.path) throw new Error(`volume ${v.name} has no path on the host: refresh its storage pool`);
    const iscsi = v.storage_type === 'iscsi' ? iscsiDiskSource(v) : undefined;
    return { path: v.path, device: 'disk', ...(iscsi ? { iscsi } : {}) };
  });
  const installing = image !== undefined && vm.boot_network;
  const iso = image?.iso_volume_id != null;
  if (installing && iso) {
    if (!image.iso_path) throw new Error(`the ISO volume of image ${image.name} has no path`);
    disks.push({ path: image.iso_path, device: 'cdrom' });
  }
  const boot: DomainSpec['boot'] = installing ? [iso ? 'cdrom' : 'network', 'hd'] : ['hd'];
  const pxeNic =
    installing && !iso && pxeBaseUrl ? parts.nics.find((n) => n.network === USER_NETWORK) : undefined;
  const limits = effectiveLimits(vm, parts.poolLimits);
  const io = ioLimits(limits);
  return {
    uuid: vm.uuid,
    name,
    vcpus: vm.vcpus,
    memoryMiB: vm.memory_mib,
    disks,
    nics: parts.nics.map((n) =>
      n === pxeNic
        ? { mac: n.mac, network: n.network, bootUrl: pxeBootUrl(pxeBaseUrl!, n.mac) }
        : { mac: n.mac, network: n.network },
    ),
    boot,
    ...(vm.boot_kernel
      ? {
          linuxBoot: {
            kernel: vm.boot_kernel,
            initrd: vm.boot_initrd ?? undefined,
            cmdline: vm.boot_cmdline ?? undefined,
          },
        }
      : {}),
    ...(limits.cpuLimitPercent !== null ? { cpuLimitPercent: limits.cpuLimitPercent } : {}),
    ...(Object.keys(io).length ? { ioLimits: io } : {}),
    virtType: vm.virt_type ?? parts.hostVirtType ?? 'auto',
  };
}

/** DHCP's boot file name field holds 127 bytes (qemu's user network puts the URL there). */
const BOOT_FILE_MAX = 127;

/** herd's iPXE script for the NIC with this MAC, as the guest asks it over the network. */
export function pxeBootUrl(pxeBaseUrl: string, mac: string): string {
  const url = `${pxeBaseUrl}/pxe/boot?mac=${mac}`;
  if (Buffer.byteLength(url) > BOOT_FILE_MAX) {
    throw new Error(
      `the iPXE script's URL ${url} is longer than DHCP's ${BOOT_FILE_MAX}-byte boot file name: shorten HERD_PXE_BASE_URL`,
    );
  }
  return url;
}
