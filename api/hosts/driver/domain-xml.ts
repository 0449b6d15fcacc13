import { XMLBuilder, XMLParser } from 'fast-xml-parser';
import type { DomainSpec, DomainState, IoLimits, IscsiDiskSource } from './host-driver.js';

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
 * Whether libvirt can shape a NIC on this network: it puts `<bandwidth>` as tc rules on the NIC's host device
 * (a tap on a libvirt network, bridge or `ethernet`). qemu's user network has no host device: libvirt only warns
 * there and enforces nothing, and refuses to change it live, so herd gives such a NIC no `<bandwidth>`.
 */
export function shapeableNetwork(network: string): boolean {
  return network !== USER_NETWORK;
}

/** libvirt's names of the NIC limits (`<bandwidth>` attributes and virDomainSetInterfaceParameters fields). */
export const BANDWIDTH_PARAMS = {
  inbound: { average: 'netInboundKiBps', peak: 'netInboundPeakKiBps', burst: 'netInboundBurstKiB' },
  outbound: { average: 'netOutboundKiBps', peak: 'netOutboundPeakKiBps', burst: 'netOutboundBurstKiB' },
} as const satisfies Record<string, Record<string, keyof IoLimits>>;

/** libvirt's names of the disk limits (`<iotune>` elements and virDomainSetBlockIoTune fields). */
export const IOTUNE_PARAMS = {
  read_bytes_sec: 'diskReadBytesPerSec',
  write_bytes_sec: 'diskWriteBytesPerSec',
  read_iops_sec: 'diskReadIops',
  write_iops_sec: 'diskWriteIops',
} as const satisfies Record<string, keyof IoLimits>;

/**
 * A direction's `<bandwidth>` attributes, or null where it has no average (libvirt requires one; a peak or
 * burst alone is not applied).
 */
export function bandwidthOf(limits: IoLimits, direction: keyof typeof BANDWIDTH_PARAMS) {
  const names = BANDWIDTH_PARAMS[direction];
  if (!limits[names.average]) return null;
  const out: { average: number; peak?: number; burst?: number } = { average: limits[names.average]! };
  if (limits[names.peak]) out.peak = limits[names.peak];
  if (limits[names.burst]) out.burst = limits[names.burst];
  return out;
}

function bandwidthXml(limits: IoLimits | undefined) {
  if (!limits) return {};
  const dirs = Object.fromEntries(
    (['inbound', 'outbound'] as const).flatMap((d) => {
      const b = bandwidthOf(limits, d);
      return b ? [[d, Object.fromEntries(Object.entries(b).map(([k, v]) => [`@${k}`, v]))]] : [];
    }),
  );
  return Object.keys(dirs).length ? { bandwidth: dirs } : {};
}

function iotuneXml(limits: IoLimits | undefined) {
  if (!limits) return {};
  const tune = Object.fromEntries(
    Object.entries(IOTUNE_PARAMS).flatMap(([el, field]) => (limits[field] ? [[el, limits[field]]] : [])),
  );
  return Object.keys(tune).length ? { iotune: tune } : {};
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
      ...(isCdrom ? { readonly: '' } : iotuneXml(spec.ioLimits)),
      ...(bootOrder[i] ?? {}),
    };
  });
  const interfaces = spec.nics
    .filter((n) => n !== pxe)
    .map((n) =>
      n.network === USER_NETWORK || n.network === ETHERNET_NETWORK
        ? {
            '@type': n.network,
            mac: { '@address': n.mac },
            model: { '@type': 'virtio' },
            ...(shapeableNetwork(n.network) ? bandwidthXml(spec.ioLimits) : {}),
          }
        : {
            '@type': 'network',
            mac: { '@address': n.mac },
            source: { '@network': n.network },
            model: { '@type': 'virtio' },
            ...bandwidthXml(spec.ioLimits),
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
