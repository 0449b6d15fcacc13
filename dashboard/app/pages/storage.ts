import { get } from '../api.js';
import { fill, h, link } from '../dom.js';
import { number } from '../format.js';
import type { Page } from '../page.js';
import { onStateChange, state } from '../state.js';
import { dataTable } from '../table.js';
import { breadcrumbs, facts } from './common.js';

/** A storage pool as `GET /api/v1/storage-pools` answers it (the fields this page shows). */
export interface StoragePool {
  id: number;
  poolId: number;
  name: string;
  /** herd's type (`iscsi`, `nfs`, `lvm`, `libvirt`) and libvirt's. */
  type: string;
  libvirtType: string | null;
  /** Where it is: portal, port, target IQN, CHAP user (iSCSI); server and export (NFS); volume group (LVM). */
  params: Record<string, unknown>;
  volumes: number;
  sizeGiB: number;
  attachedGiB: number;
}

interface Volume {
  id: number;
  name: string;
  path: string | null;
  sizeGiB: number;
  vmId: number | null;
}

/** The VM holding a volume, by name and linked, or "free". */
function holder(vmId: number | null): Node | string {
  if (vmId === null) return 'free';
  const vm = state.vms.get(vmId);
  return link(`#/vm/${vmId}`, vm?.name ?? `VM ${vmId}`);
}

/** A hardware pool's storage pools, each linked to its page. */
export function storagePoolsTable(label: string) {
  return dataTable<StoragePool>({
    label,
    empty: 'No storage pool.',
    columns: [
      { title: 'Name', value: (s) => s.name, render: (s) => link(`#/storage/${s.id}`, s.name) },
      { title: 'Type', value: (s) => s.type },
      { title: 'Volumes', value: (s) => s.volumes, numeric: true },
      { title: 'Size (GiB)', value: (s) => s.sizeGiB, render: (s) => number(s.sizeGiB), numeric: true },
      {
        title: 'Attached (GiB)',
        value: (s) => s.attachedGiB,
        render: (s) => number(s.attachedGiB),
        numeric: true,
        secondary: true,
      },
    ],
  });
}

/**
 * A storage pool: where it is (an iSCSI target's portal and IQN, an NFS export, a volume group) and its volumes
 * (an iSCSI target's LUNs) with their sizes and the VM that holds each.
 */
export const storagePage: Page = async (main, [id]) => {
  const storageId = Number(id);
  const [pool, volumes] = await Promise.all([
    get<StoragePool>(`/api/v1/storage-pools/${storageId}`),
    get<{ items: Volume[] }>(`/api/v1/storage-pools/${storageId}/volumes?limit=1000`),
  ]);
  const p = pool.params;
  const where: Array<[string, string | number | null | undefined]> =
    pool.type === 'iscsi'
      ? [
          ['Portal', `${p.portal}:${p.port ?? 3260}`],
          ['Target', String(p.targetIqn)],
          ['CHAP user', typeof p.chapUsername === 'string' ? p.chapUsername : 'none'],
        ]
      : [];
  const table = dataTable<Volume>({
    label: pool.type === 'iscsi' ? `LUNs of ${pool.name}` : `Volumes of ${pool.name}`,
    empty: 'No volume.',
    search: (v) => `${v.name} ${v.vmId === null ? 'free' : (state.vms.get(v.vmId)?.name ?? '')}`,
    columns: [
      { title: pool.type === 'iscsi' ? 'LUN' : 'Volume', value: (v) => v.name },
      { title: 'Size (GiB)', value: (v) => v.sizeGiB, render: (v) => number(v.sizeGiB), numeric: true },
      {
        title: 'VM',
        value: (v) => (v.vmId === null ? '' : (state.vms.get(v.vmId)?.name ?? String(v.vmId))),
        render: (v) => holder(v.vmId),
      },
      { title: 'Path', value: (v) => v.path, secondary: true },
    ],
  });
  table.setRows(volumes.items);
  fill(
    main,
    breadcrumbs(pool.poolId, pool.name),
    h('h1', null, pool.name, ' ', h('span', { class: 'muted kind' }, `${pool.type} storage`)),
    h(
      'section',
      { class: 'card' },
      facts([
        ['Type', pool.libvirtType ? `${pool.type} (libvirt ${pool.libvirtType})` : pool.type],
        ...where,
        ['Size', `${number(pool.sizeGiB)} GiB, ${number(pool.attachedGiB)} GiB held by VMs`],
      ]),
    ),
    h('section', { class: 'card' }, h('h2', null, pool.type === 'iscsi' ? 'LUNs' : 'Volumes'), table.el),
  );
  // VM names come from the live state: redraw when it changes.
  return onStateChange(() => table.redraw());
};
