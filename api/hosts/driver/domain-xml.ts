import { XMLBuilder, XMLParser } from 'fast-xml-parser';
import type { DomainSpec, DomainState } from './host-driver.js';

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

/** The domain type libvirt expects for a connection URI's driver: test:// wants 'test', qemu wants 'kvm'. */
export function domainTypeFor(uri: string): string {
  const scheme = uri.split(':', 1)[0].split('+', 1)[0];
  if (scheme === 'test') return 'test';
  if (scheme === 'qemu') return 'kvm';
  return scheme;
}

/**
 * herd's domain XML: what herd records about a VM and nothing more. Block devices (iSCSI LUNs, LVs) are
 * attached as `type='block'`, files as `type='file'`. `on_crash` is `preserve` so a crashed guest stays
 * visible as crashed instead of silently turning into "shut off".
 */
export function domainXml(spec: DomainSpec, domainType: string): string {
  let disk = 0;
  let cdrom = 0;
  const disks = spec.disks.map((d) => {
    const isCdrom = d.device === 'cdrom';
    const isBlock = d.path.startsWith('/dev/');
    const target = isCdrom ? `sd${letters(cdrom++)}` : `vd${letters(disk++)}`;
    return {
      '@type': isBlock ? 'block' : 'file',
      '@device': isCdrom ? 'cdrom' : 'disk',
      driver: { '@name': 'qemu', '@type': 'raw' },
      source: isBlock ? { '@dev': d.path } : { '@file': d.path },
      target: { '@dev': target, '@bus': isCdrom ? 'sata' : 'virtio' },
      ...(isCdrom ? { readonly: '' } : {}),
    };
  });
  const interfaces = spec.nics.map((n) => ({
    '@type': 'network',
    mac: { '@address': n.mac },
    source: { '@network': n.network },
    model: { '@type': 'virtio' },
  }));
  const doc = {
    domain: {
      '@type': domainType,
      name: spec.name,
      uuid: spec.uuid,
      memory: { '@unit': 'MiB', '#text': spec.memoryMiB },
      currentMemory: { '@unit': 'MiB', '#text': spec.memoryMiB },
      vcpu: { '@placement': 'static', '#text': spec.vcpus },
      os: {
        type: 'hvm',
        boot: spec.boot.map((dev) => ({ '@dev': dev })),
      },
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
      },
    },
  };
  return builder.build(doc);
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
