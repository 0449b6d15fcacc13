import { parseXml } from './domain-xml.js';
import type { VirtSupport, VirtTypeSetting } from './host-driver.js';

export interface VirtTypeChoice {
  /** The domain type guests get; null: none can be defined with this setting on this host. */
  type: 'kvm' | 'qemu' | 'test' | null;
  /** Why, in words, for the host page and `GET /api/v1/hosts/:id`. */
  reason: string;
}

const CPU_VIRT_FEATURES = ['vmx', 'svm'];

/** The domain types offered and the CPU's vmx/svm, from `virConnectGetCapabilities` XML. */
export function virtSupportFromCapabilities(capabilitiesXml: string): VirtSupport {
  const caps = parseXml(capabilitiesXml).capabilities ?? {};
  const domainTypes = new Set<string>();
  for (const guest of list(caps.guest)) {
    for (const d of list(guest.arch?.domain)) if (d?.['@type']) domainTypes.add(String(d['@type']));
  }
  const cpu = caps.host?.cpu ?? {};
  const features = new Set<string>();
  // <feature name='vmx'/> (QEMU driver) and the older <features><vmx/></features> form.
  for (const f of list(cpu.feature)) if (f?.['@name']) features.add(String(f['@name']));
  for (const f of list(cpu.features))
    if (f && typeof f === 'object') for (const k of Object.keys(f)) features.add(k);
  return {
    domainTypes: [...domainTypes],
    cpuVirtFeatures: CPU_VIRT_FEATURES.filter((f) => features.has(f)),
  };
}

/**
 * The virtualization type a careful operator would choose (oVirt's host check, `virt-host-validate`): under `auto`,
 * KVM only when libvirt offers it and the host CPU shows vmx or svm (a /dev/kvm without them can hang every
 * guest), else TCG emulation. An explicit `kvm` or `qemu` is obeyed where libvirt offers it.
 */
export function chooseVirtType(support: VirtSupport | null, setting: VirtTypeSetting): VirtTypeChoice {
  if (!support) return { type: null, reason: "not known yet: the host's capabilities have not been read" };
  const offered = new Set(support.domainTypes);
  if (offered.has('test') && !offered.has('qemu') && !offered.has('kvm')) {
    return { type: 'test', reason: "libvirt's test driver: no guest really runs" };
  }
  const cpuFlags = support.cpuVirtFeatures.length > 0;
  const flagsText = cpuFlags
    ? `the CPU shows ${support.cpuVirtFeatures.join('/')}`
    : 'the CPU shows no vmx/svm';
  if (setting === 'qemu') {
    return offered.has('qemu')
      ? { type: 'qemu', reason: 'set to qemu: guests run emulated (TCG)' }
      : { type: null, reason: 'set to qemu, but libvirt offers no qemu (TCG) domain on this host' };
  }
  if (setting === 'kvm') {
    if (!offered.has('kvm')) {
      return {
        type: null,
        reason: 'set to kvm, but libvirt offers no KVM on this host: set virtType to auto or qemu',
      };
    }
    return { type: 'kvm', reason: `set to kvm (${flagsText})` };
  }
  if (offered.has('kvm') && cpuFlags) return { type: 'kvm', reason: `KVM offered and ${flagsText}` };
  if (offered.has('kvm'))
    return { type: 'qemu', reason: `KVM offered but ${flagsText}: guests run emulated` };
  if (offered.has('qemu'))
    return { type: 'qemu', reason: 'libvirt offers no KVM on this host: guests run emulated' };
  return { type: null, reason: 'libvirt offers no domain type herd can use on this host' };
}

function list(node: any): any[] {
  return Array.isArray(node) ? node : node === undefined || node === null || node === '' ? [] : [node];
}
