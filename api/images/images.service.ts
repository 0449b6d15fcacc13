import { assertPool, assertVm, canListUsers } from '../access/access.service.js';
import type { AppDeps } from '../app.js';
import { audit } from '../audit/audit.service.js';
import type { AuthUser } from '../auth/auth-user.js';
import { badRequest, conflict, forbidden, notFound } from '../http/errors.js';
import {
  type BootTarget,
  bootTargetByMac,
  deleteImage,
  findImage,
  findImageByName,
  type ImageRow,
  insertImage,
  listImages,
  setInstalled,
} from './images.repository.js';

type Deps = Pick<AppDeps, 'db' | 'log'>;

export type ImageBody =
  | { name: string; kernel: string; initrd?: string; cmdline?: string }
  | { name: string; ipxeUrl: string }
  | { name: string; isoVolumeId: number };

export interface ImageAnswer {
  id: number;
  name: string;
  kind: 'kernel' | 'ipxe' | 'iso';
  kernel: string | null;
  initrd: string | null;
  cmdline: string | null;
  ipxeUrl: string | null;
  isoVolumeId: number | null;
  createdAt: string;
  createdBy: number | null;
}

export function imageKind(row: Pick<ImageRow, 'kernel' | 'ipxe_url'>): ImageAnswer['kind'] {
  if (row.kernel) return 'kernel';
  if (row.ipxe_url) return 'ipxe';
  return 'iso';
}

function toAnswer(row: ImageRow): ImageAnswer {
  return {
    id: row.id,
    name: row.name,
    kind: imageKind(row),
    kernel: row.kernel,
    initrd: row.initrd,
    cmdline: row.cmdline,
    ipxeUrl: row.ipxe_url,
    isoVolumeId: row.iso_volume_id,
    createdAt: row.created_at.toISOString(),
    createdBy: row.created_by,
  };
}

/**
 * The catalogue is shared by every pool: any signed-in user reads it, pool admins (anywhere) extend it, and an image
 * is removed by who added it or the super-admin (other pools' VMs may boot from it).
 */
async function assertCurator(deps: Deps, user: AuthUser): Promise<void> {
  if (!(await canListUsers(deps.db, user)))
    throw forbidden('managing install images needs the admin role on a pool');
}

export async function createImage(deps: Deps, user: AuthUser, body: ImageBody): Promise<ImageAnswer> {
  await assertCurator(deps, user);
  const kinds = ['kernel', 'ipxeUrl', 'isoVolumeId'].filter(
    (k) => k in body && (body as any)[k] !== undefined,
  );
  if (kinds.length !== 1) {
    throw badRequest('body: give exactly one of kernel (with initrd, cmdline), ipxeUrl or isoVolumeId', {
      field: kinds[1] ?? 'kernel',
    });
  }
  if ('isoVolumeId' in body) {
    const volume = await deps.db
      .selectFrom('volumes')
      .innerJoin('storage_pools', 'storage_pools.id', 'volumes.storage_pool_id')
      .select(['volumes.id', 'storage_pools.pool_id'])
      .where('volumes.id', '=', body.isoVolumeId)
      .executeTakeFirst();
    if (!volume) throw badRequest(`isoVolumeId: no volume ${body.isoVolumeId}`, { field: 'isoVolumeId' });
    await assertPool(deps.db, user, volume.pool_id, 'view', 'volume');
  }
  if (await findImageByName(deps.db, body.name))
    throw conflict('image_exists', `an image named ${body.name} exists`);
  const row = await deps.db.transaction().execute(async (trx) => {
    const image = await insertImage(trx, {
      name: body.name,
      kernel: 'kernel' in body ? body.kernel : null,
      initrd: 'kernel' in body ? (body.initrd ?? null) : null,
      cmdline: 'kernel' in body ? (body.cmdline ?? null) : null,
      ipxe_url: 'ipxeUrl' in body ? body.ipxeUrl : null,
      iso_volume_id: 'isoVolumeId' in body ? body.isoVolumeId : null,
      created_by: user.id,
    });
    await audit(trx, {
      userId: user.id,
      action: 'image.create',
      entityType: 'image',
      entityId: image.id,
      after: image,
    });
    return image;
  });
  return toAnswer(row);
}

export async function listImagesFor(deps: Deps, page: { limit: number; offset: number }) {
  const { items, total } = await listImages(deps.db, page);
  return { items: items.map(toAnswer), total };
}

export async function getImage(deps: Deps, id: number): Promise<ImageAnswer> {
  const row = await findImage(deps.db, id);
  if (!row) throw notFound('image');
  return toAnswer(row);
}

export async function removeImage(deps: Deps, user: AuthUser, id: number): Promise<void> {
  await assertCurator(deps, user);
  const row = await findImage(deps.db, id);
  if (!row) throw notFound('image');
  if (!user.isSuperAdmin && row.created_by !== user.id)
    throw forbidden('an install image is removed by who added it, or the super-admin');
  await deps.db.transaction().execute(async (trx) => {
    await deleteImage(trx, id);
    await audit(trx, {
      userId: user.id,
      action: 'image.delete',
      entityType: 'image',
      entityId: id,
      before: row,
    });
  });
}

/** `POST /api/v1/vms/:id/installed`: the VM's installation finished; from now on it boots from its disk. */
export async function markInstalled(
  deps: Deps,
  user: AuthUser,
  vmId: number,
): Promise<{ id: number; bootNetwork: false }> {
  const vm = await deps.db
    .selectFrom('vms')
    .select(['id', 'pool_id', 'owner_id'])
    .where('id', '=', vmId)
    .executeTakeFirst();
  if (!vm) throw notFound('vm');
  await assertVm(deps.db, user, vm, 'control');
  await deps.db.transaction().execute(async (trx) => {
    await setInstalled(trx, vmId);
    await audit(trx, {
      userId: user.id,
      action: 'vm.installed',
      entityType: 'vm',
      entityId: vmId,
      after: { bootNetwork: false },
    });
  });
  return { id: vmId, bootNetwork: false };
}

const MAC =
  /^([0-9a-f]{2})[:-]?([0-9a-f]{2})[:-]?([0-9a-f]{2})[:-]?([0-9a-f]{2})[:-]?([0-9a-f]{2})[:-]?([0-9a-f]{2})$/i;

/** aa:bb:cc:dd:ee:ff from the usual spellings (colons, dashes, none; any case), or null. */
export function normalizeMac(input: string): string | null {
  const m = MAC.exec(input.trim());
  return m ? m.slice(1).join(':').toLowerCase() : null;
}

/** iPXE's "boot from the next device": the firmware goes on to the disk. */
const BOOT_FROM_DISK = '#!ipxe\nexit\n';

/**
 * The iPXE script for the VM owning `mac`: its install image while it is not installed yet (kernel, initrd
 * and command line, or a chain to the image's own iPXE script), else `exit` so it boots from disk. An ISO
 * image is attached as a CD-ROM by the VM's definition, so the network boot steps aside for it as well.
 * `{{name}}`, `{{uuid}}` and `{{mac}}` in the command line are the VM's.
 */
export async function pxeScript(deps: Deps, mac: string): Promise<string> {
  const target = await bootTargetByMac(deps.db, mac);
  if (!target?.boot_network || !target.image) return BOOT_FROM_DISK;
  const image = target.image;
  const fill = (s: string) =>
    oneLine(
      s
        .replaceAll('{{name}}', target.vm_name)
        .replaceAll('{{uuid}}', target.vm_uuid)
        .replaceAll('{{mac}}', mac),
    );
  deps.log.info({ vmId: target.vm_id, image: image.name, mac }, 'serving an install image over iPXE');
  return installScript(target, image, fill);
}

function installScript(target: BootTarget, image: ImageRow, fill: (s: string) => string): string {
  const lines = ['#!ipxe', `echo herd: installing ${oneLine(target.vm_name)} from ${oneLine(image.name)}`];
  if (image.kernel) {
    lines.push(`kernel ${image.kernel}${image.cmdline ? ` ${fill(image.cmdline)}` : ''}`);
    if (image.initrd) lines.push(`initrd ${image.initrd}`);
    lines.push('boot');
  } else if (image.ipxe_url) {
    lines.push(`chain ${fill(image.ipxe_url)}`);
  } else {
    lines.push('exit');
  }
  return `${lines.join('\n')}\n`;
}

/** A script line must stay one line whatever a name holds: an embedded newline would be a new command. */
function oneLine(s: string): string {
  return s.replace(/[\r\n\t\0]+/g, ' ');
}
