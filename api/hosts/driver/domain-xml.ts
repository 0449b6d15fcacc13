import { XMLBuilder, XMLParser } from 'fast-xml-parser';
import type { DomainSpec, DomainState, IscsiDiskSource } from './host-driver.js';

/** libvirt's virDomainState numbers (include/libvirt/libvirt-domain.h). */
const LIBVIRT_STATES: Record<number, DomainState> = {
  0: 'unknown', // NOSTATE
  1: 'running',
  2: 'running', // BLOCKED: running, waiting on a resource
  3: 'paused',
  4: 'running', // SHUTDOWN: being shut down, still running
  5: 'shutoff',
  6: 'crashed',
  7: 'paused', // PMSUSPENDED: the guest suspended itself
};

export function domainStateFromLibvirt(state: number): DomainState {
  return LIBVIRT_STATES[state] ?? 'unknown';
}

const builder = new XMLBuilder({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  format: true,
  suppressEmptyNode: true,
});

/** The network name that means qemu's user-mode network (no libvirt network, no bridge): NAT through the host. */
export const USER_NETWORK = 'user';
/**
 * The network name that means a bare tap device on the host (`<interface type='ethernet'>`: libvirt makes a
 * `vnetN`, no bridge, no libvirt network): the guest's traffic reaches the host's tap only. Unlike the user
 * network it has host-side counters, so collectd's virt plugin reports its traffic.
 */
export const ETHERNET_NETWORK = 'ethernet';

/** The CFS period of herd's CPU limits (µs): libvirt's and the kernel's default, 100 ms. */
export const CPU_PERIOD_US = 100_000;

/**
 * A CPU hard limit as the CFS quota of each vCPU over CPU_PERIOD_US (libvirt `<cputune>` `<quota>`,
 * `virsh schedinfo` `vcpu_quota`): 50 % is 50 ms of CPU time every 100 ms per vCPU.
 */
export function cpuQuotaUs(limitPercent: number): number {
  return Math.round((CPU_PERIOD_US * limitPercent) / 100);
}

/**
 * herd's domain XML: what herd records about a VM and nothing more. Block devices (iSCSI LUNs, LVs) are
 * attached as `type='block'`, files as `type='file'`. `on_crash` is `preserve` so a crashed guest stays
 * visible as crashed instead of silently turning into "shut off".
 */
export function domainXml(spec: DomainSpec, domainType: string): string {
  let disk = 0;
  let cdrom = 0;
  const pxe = spec.nics.find((n) => n.bootUrl && n.network === USER_NETWORK);
  // The network-booting NIC is qemu's bootindex 1 (below); the disks follow in order, per device, as libvirt
  // refuses an <os><boot> order beside per-device ones.
  const bootOrder = pxe ? [...spec.disks.keys()].map((i) => ({ boot: { '@order': i + 2 } })) : [];
  const disks = spec.disks.map((d, i) => {
    const isCdrom = d.device === 'cdrom';
    const isBlock = d.path.startsWith('/dev/');
    const target = isCdrom ? `sd${letters(cdrom++)}` : `vd${letters(disk++)}`;
    return {
      '@type': d.iscsi ? 'network' : isBlock ? 'block' : 'file',
      '@device': isCdrom ? 'cdrom' : 'disk',
      // No host cache: the disk is consistent on shared storage, which live migration needs.
      driver: { '@name': 'qemu', '@type': 'raw', ...(isCdrom ? {} : { '@cache': 'none' }) },
      source: d.iscsi ? iscsiSource(d.iscsi) : isBlock ? { '@dev': d.path } : { '@file': d.path },
      target: { '@dev': target, '@bus': isCdrom ? 'sata' : 'virtio' },
      ...(isCdrom ? { readonly: '' } : {}),
      ...(bootOrder[i] ?? {}),
    };
  });
  const interfaces = spec.nics
    .filter((n) => n !== pxe)
    .map((n) =>
      n.network === USER_NETWORK || n.network === ETHERNET_NETWORK
        ? { '@type': n.network, mac: { '@address': n.mac }, model: { '@type': 'virtio' } }
        : {
            '@type': 'network',
            mac: { '@address': n.mac },
            source: { '@network': n.network },
            model: { '@type': 'virtio' },
          },
    );
  const linux = spec.linuxBoot;
  const doc = {
    domain: {
      '@type': domainType,
      ...(pxe ? { '@xmlns:qemu': QEMU_NS } : {}),
      name: spec.name,
      uuid: spec.uuid,
      memory: { '@unit': 'MiB', '#text': spec.memoryMiB },
      currentMemory: { '@unit': 'MiB', '#text': spec.memoryMiB },
      vcpu: { '@placement': 'static', '#text': spec.vcpus },
      ...(spec.cpuLimitPercent
        ? { cputune: { period: CPU_PERIOD_US, quota: cpuQuotaUs(spec.cpuLimitPercent) } }
        : {}),
      os: linux
        ? {
            type: 'hvm',
            kernel: linux.kernel,
            ...(linux.initrd ? { initrd: linux.initrd } : {}),
            ...(linux.cmdline ? { cmdline: linux.cmdline } : {}),
          }
        : pxe
          ? { type: 'hvm' }
          : { type: 'hvm', boot: spec.boot.map((dev) => ({ '@dev': dev })) },
      features: { acpi: { '#text': '' }, apic: { '#text': '' } },
      on_poweroff: 'destroy',
      on_reboot: 'restart',
      on_crash: 'preserve',
      devices: {
        disk: disks,
        interface: interfaces,
        serial: { '@type': 'pty' },
        console: { '@type': 'pty' },
        graphics: { '@type': 'vnc', '@autoport': 'yes', '@listen': '127.0.0.1' },
        // Memory statistics every 10 s: what collectd's virt plugin reads as the guest's memory use.
        memballoon: { '@model': 'virtio', stats: { '@period': '10' } },
      },
      ...(pxe ? { 'qemu:commandline': { 'qemu:arg': pxeNicArgs(pxe).map((v) => ({ '@value': v })) } } : {}),
    },
  };
  return builder.build(doc);
}

const QEMU_NS = 'http://libvirt.org/schemas/domain/qemu/1.0';

/**
 * A NIC on qemu's user network that boots from the network: libvirt's `<interface type='user'>` cannot set the
 * boot file name qemu's built-in DHCP hands out, so the NIC goes to qemu directly (`<qemu:commandline>`): a
 * user-mode netdev with `bootfile=<url>` (DHCP's file name, which the virtio NIC's iPXE ROM fetches over HTTP)
 * and a virtio NIC on it, first in the boot order. Commas in a qemu option value are doubled. libvirt gives its
 * own devices fixed PCI slots from the lowest up, and qemu may create this one first: it takes slot 0x1e of the
 * `pc` machine's bus (libvirt's default for x86), out of libvirt's way.
 */
function pxeNicArgs(nic: { mac: string; bootUrl?: string }): string[] {
  const url = (nic.bootUrl ?? '').replaceAll(',', ',,');
  return [
    '-netdev',
    `user,id=herdpxe0,bootfile=${url}`,
    '-device',
    `virtio-net-pci,id=herdpxenic0,netdev=herdpxe0,mac=${nic.mac},bootindex=1,bus=pci.0,addr=0x1e`,
  ];
}

/**
 * A LUN qemu opens itself over iSCSI (its libiscsi block driver), logging in with CHAP from the host's libvirt
 * secret: every host that may run the guest reaches the LUN the same way, so a live migration copies no disk.
 */
function iscsiSource(src: IscsiDiskSource) {
  return {
    '@protocol': 'iscsi',
    '@name': `${src.targetIqn}/${src.lun}`,
    host: { '@name': src.portal, '@port': src.port },
    initiator: { iqn: { '@name': src.initiatorIqn } },
    ...(src.chap
      ? {
          auth: {
            '@username': src.chap.username,
            secret: { '@type': 'iscsi', '@usage': src.chap.secretUsage },
          },
        }
      : {}),
  };
}

/** vda, vdb, …, vdz, vdaa: libvirt's disk naming. */
function letters(n: number): string {
  let out = '';
  let i = n;
  do {
    out = String.fromCharCode(97 + (i % 26)) + out;
    i = Math.floor(i / 26) - 1;
  } while (i >= 0);
  return out;
}

const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@', parseTagValue: false });

export function parseXml(xml: string): Record<string, any> {
  return parser.parse(xml) as Record<string, any>;
}
