import type { StoragePoolDefinition } from './host-driver.js';

/** `VIR_SECRET_USAGE_TYPE_ISCSI`. */
export const SECRET_USAGE_ISCSI = 3;

const esc = (s: string) =>
  s
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll("'", '&apos;')
    .replaceAll('"', '&quot;');

/** The usage id of the libvirt secret holding an iSCSI storage pool's CHAP secret on each host. */
export function chapSecretUsage(poolName: string): string {
  return `herd-iscsi-${poolName}`;
}

/** The initiator name herd's hosts log in to a pool's target with (libiscsi needs one; qemu uses it too). */
export function initiatorIqn(poolName: string): string {
  return `iqn.2026-12.org.herd:${poolName.toLowerCase().replaceAll(/[^a-z0-9.-]/g, '-')}`;
}

/**
 * A private, persistent libvirt secret of usage `iscsi`: libvirt keeps its value (0600, under its own
 * configuration directory) and never hands it out over its API.
 */
export function chapSecretXml(poolName: string): string {
  return `<secret ephemeral='no' private='yes'><description>herd: CHAP secret of iSCSI storage pool ${esc(poolName)}</description><usage type='iscsi'><target>${esc(chapSecretUsage(poolName))}</target></usage></secret>`;
}

/**
 * A storage pool as herd defines it. iSCSI is libvirt's `iscsi-direct` pool: libvirt logs in with libiscsi, no
 * kernel initiator (the host needs no open-iscsi, and qemu reaches the LUNs with its own libiscsi driver).
 */
export function storagePoolXml(def: StoragePoolDefinition): string {
  switch (def.type) {
    case 'iscsi': {
      const auth = def.chapUsername
        ? `<auth type='chap' username='${esc(def.chapUsername)}'><secret usage='${esc(chapSecretUsage(def.name))}'/></auth>`
        : '';
      return `<pool type='iscsi-direct'><name>${esc(def.name)}</name><source><host name='${esc(def.portal)}' port='${def.port}'/><device path='${esc(def.targetIqn)}'/><initiator><iqn name='${esc(initiatorIqn(def.name))}'/></initiator>${auth}</source></pool>`;
    }
    case 'nfs':
      return `<pool type='netfs'><name>${esc(def.name)}</name><source><host name='${esc(def.server)}'/><dir path='${esc(def.export)}'/><format type='nfs'/></source><target><path>${esc(def.mountPoint ?? `/var/lib/herd/nfs/${def.name}`)}</path></target></pool>`;
    case 'lvm':
      return `<pool type='logical'><name>${esc(def.name)}</name><source><name>${esc(def.volumeGroup)}</name><format type='lvm2'/></source><target><path>/dev/${esc(def.volumeGroup)}</path></target></pool>`;
  }
}

/** An iSCSI-direct pool's volume is `unit:0:0:<LUN>`; LUN 0 of a target is often its controller (no size). */
export function lunOfVolume(name: string): number | null {
  const m = /^unit:\d+:\d+:(\d+)$/.exec(name);
  return m ? Number(m[1]) : null;
}
