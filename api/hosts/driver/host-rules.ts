import type { StoragePoolDefinition } from './host-driver.js';

/** libvirt's virDomainJobOperation numbers (include/libvirt/libvirt-domain.h). */
export const JOB_OPERATIONS: Record<string, string> = {
  '1': 'start',
  '2': 'save',
  '3': 'restore',
  '4': 'incoming migration',
  '5': 'outgoing migration',
  '6': 'snapshot',
  '7': 'snapshot revert',
  '8': 'dump',
  '9': 'backup',
};

/**
 * Whether a live migration to `destinationUri` stays on this same machine (a URI without a host, or a loopback
 * host). libvirt would send the guest's memory to the destination's hostname and refuses 127.0.0.1 as qemu.conf's
 * `migration_address`, so then the destination is told to listen on loopback and the source to connect there (a
 * port from the destination's `migration_port_min…max`): `migrate_uri` and `listen_address` 127.0.0.1. The disks
 * are then the same files on the same filesystem whatever libvirt can tell of the storage, so its refusal of
 * storage it does not know to be shared (a plain directory) does not apply: `UNSAFE`. Any other destination:
 * libvirt's defaults (its hostname, and shared storage libvirt recognises: NFS, iSCSI, …).
 */
export function migratesOnThisMachine(destinationUri: string): boolean {
  let host: string;
  try {
    host = new URL(destinationUri).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return false;
  }
  return host === '' || host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** libvirt storage pool XML for the pool types herd defines itself. */
export function storagePoolXml(def: StoragePoolDefinition): string {
  const esc = (s: string) =>
    s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll("'", '&apos;');
  switch (def.type) {
    case 'iscsi':
      return `<pool type='iscsi'><name>${esc(def.name)}</name><source><host name='${esc(def.portal)}' port='${def.port}'/><device path='${esc(def.targetIqn)}'/></source><target><path>/dev/disk/by-path</path></target></pool>`;
    case 'nfs':
      return `<pool type='netfs'><name>${esc(def.name)}</name><source><host name='${esc(def.server)}'/><dir path='${esc(def.export)}'/><format type='nfs'/></source><target><path>${esc(def.mountPoint ?? `/var/lib/herd/nfs/${def.name}`)}</path></target></pool>`;
    case 'lvm':
      return `<pool type='logical'><name>${esc(def.name)}</name><source><name>${esc(def.volumeGroup)}</name><format type='lvm2'/></source><target><path>/dev/${esc(def.volumeGroup)}</path></target></pool>`;
  }
}
