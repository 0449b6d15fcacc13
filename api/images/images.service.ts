import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
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
  installTokenFor,
  listImages,
  setInstalled,
  vmByInstallToken,
} from './images.repository.js';

type Deps = Pick<AppDeps, 'db' | 'log'>;
type PxeDeps = Pick<AppDeps, 'db' | 'log' | 'config'>;

/** A kernel or initrd given as a file on herd's machine (served by herd at /pxe/images/:id/…), not a URL. */
export function isHerdFile(location: string | null): location is string {
  return location?.startsWith('/') === true;
}

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
  if ('kernel' in body) await assertServableFiles(user, body);
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

/**
 * A kernel or initrd named by its path on herd's machine is served to anyone who asks /pxe/images (guests'
 * firmware does not log in): only the super-admin may publish a file of herd's machine that way, and it must be
 * a readable regular file.
 */
async function assertServableFiles(user: AuthUser, body: { kernel: string; initrd?: string }): Promise<void> {
  for (const field of ['kernel', 'initrd'] as const) {
    const file = body[field];
    if (file === undefined || !isHerdFile(file)) continue;
    if (!user.isSuperAdmin)
      throw forbidden(
        `${field}: a file on herd's machine is served by herd: only the super-admin may name one`,
      );
    if (path.normalize(file) !== file)
      throw badRequest(`${field}: give the file's plain absolute path (no . or .. parts)`, { field });
    const info = await stat(file).catch(() => null);
    if (!info?.isFile()) throw badRequest(`${field}: no regular file ${file} on herd's machine`, { field });
  }
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
  await recordInstalled(deps, vmId, user.id, 'api');
  return { id: vmId, bootNetwork: false };
}

/** boot_network=false (the install token goes with it) and the audit entry, in one transaction. */
async function recordInstalled(deps: Deps, vmId: number, userId: number | null, via: 'api' | 'pxe') {
  await deps.db.transaction().execute(async (trx) => {
    await setInstalled(trx, vmId);
    await audit(trx, {
      userId,
      action: 'vm.installed',
      entityType: 'vm',
      entityId: vmId,
      after: { bootNetwork: false, via },
    });
  });
}

/**
 * `POST /pxe/installed/<token>`: the guest being installed reports that it is done (the image's command line
 * carried the URL as `{{installedUrl}}`). No authentication: the token, made for this VM and cleared once used,
 * is the credential. Audited with no user (`via: "pxe"`).
 */
export async function markInstalledByToken(
  deps: Deps,
  token: string,
): Promise<{ id: number; bootNetwork: false }> {
  const vm = await vmByInstallToken(deps.db, token);
  if (!vm) throw notFound('install token');
  await recordInstalled(deps, vm.id, null, 'pxe');
  deps.log.info({ vmId: vm.id }, 'network install reported done: the VM boots from its disk from now on');
  return { id: vm.id, bootNetwork: false };
}

/**
 * `GET /pxe/images/:id/kernel|initrd`: the install image's file on herd's machine, streamed (no authentication:
 * the guest's firmware asks). 404 for an unknown image or one whose part is a URL or absent.
 */
export async function imageFile(
  deps: Deps,
  id: number,
  part: 'kernel' | 'initrd',
): Promise<{ stream: Readable; size: number }> {
  const row = await findImage(deps.db, id);
  const file = row?.[part] ?? null;
  if (!isHerdFile(file)) throw notFound(`${part} of image ${id}`);
  const info = await stat(file).catch(() => null);
  if (!info?.isFile()) {
    deps.log.warn({ imageId: id, file }, `the ${part} of an install image is gone from herd's machine`);
    throw notFound(`${part} of image ${id}`);
  }
  deps.log.info({ imageId: id, part, bytes: info.size }, 'serving an install image file');
  return { stream: createReadStream(file), size: info.size };
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

/** The states in which a VM's firmware asks for its script: only then is it answered (docs/pxe.md). */
const BOOTING_STATES: readonly string[] = ['starting', 'running'];

/**
 * The iPXE script for the VM owning `mac`: its install image while it is not installed yet (kernel, initrd
 * and command line, or a chain to the image's own iPXE script), else `exit` so it boots from disk. An ISO
 * image is attached as a CD-ROM by the VM's definition, so the network boot steps aside for it as well.
 * `{{name}}`, `{{uuid}}` and `{{mac}}` in the command line are the VM's.
 *
 * No one logs in to ask, so a VM is answered only while it is starting or running (its firmware is the one
 * asking): a MAC of no VM, or of one that is defined, shut off, saved…, is a miss (null), and the command line
 * and install token of a VM not yet started are not handed to whoever guesses its MAC.
 */
export async function pxeScript(deps: PxeDeps, mac: string): Promise<string | null> {
  const target = await bootTargetByMac(deps.db, mac);
  if (!target || !BOOTING_STATES.includes(target.vm_state)) return null;
  if (!target.boot_network || !target.image) return BOOT_FROM_DISK;
  const image = target.image;
  const base = deps.config.pxe.baseUrl;
  const installedUrl = image.cmdline?.includes(INSTALLED_URL)
    ? `${base}/pxe/installed/${await installTokenFor(deps.db, target.vm_id, newInstallToken())}`
    : '';
  const fill = (s: string) =>
    oneLine(
      s
        .replaceAll('{{name}}', target.vm_name)
        .replaceAll('{{uuid}}', target.vm_uuid)
        .replaceAll('{{mac}}', mac)
        .replaceAll(INSTALLED_URL, installedUrl),
    );
  const served = (part: 'kernel' | 'initrd', location: string) =>
    isHerdFile(location) ? `${base}/pxe/images/${image.id}/${part}` : location;
  deps.log.info({ vmId: target.vm_id, image: image.name, mac }, 'serving an install image over iPXE');
  return installScript(target, image, fill, served);
}

/** The command line's placeholder for the VM's `POST /pxe/installed/<token>` URL. */
const INSTALLED_URL = '{{installedUrl}}';

/** 128 random bits, URL-safe: the install report's credential. */
function newInstallToken(): string {
  return randomBytes(16).toString('base64url');
}

function installScript(
  target: BootTarget,
  image: ImageRow,
  fill: (s: string) => string,
  served: (part: 'kernel' | 'initrd', location: string) => string,
): string {
  const lines = ['#!ipxe', `echo herd: installing ${oneLine(target.vm_name)} from ${oneLine(image.name)}`];
  if (image.kernel) {
    lines.push(`kernel ${served('kernel', image.kernel)}${image.cmdline ? ` ${fill(image.cmdline)}` : ''}`);
    if (image.initrd) lines.push(`initrd ${served('initrd', image.initrd)}`);
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
