import { assertPool, visiblePoolIds } from '../access/access.service.js';
import { audit } from '../audit/audit.service.js';
import type { AuthUser } from '../auth/auth-user.js';
import type { HostDriver, StoragePoolDefinition, StorageVolumeInfo } from '../hosts/driver/index.js';
import { findHost, type HostRow, isInPoolTree, poolKind } from '../hosts/hosts.repository.js';
import type { HostDeps } from '../hosts/hosts.service.js';
import { badRequest, conflict, HttpError, notFound } from '../http/errors.js';
import {
  allVolumes,
  deleteStoragePool,
  deleteVolumes,
  findStoragePool,
  findStoragePoolByName,
  hostsInPoolTree,
  insertStoragePool,
  insertVolume,
  listStoragePools,
  listVolumes,
  lockVolume,
  type StoragePoolWithUsage,
  setStoragePoolHost,
  updateVolume,
  type VolumeRow,
} from './storage.repository.js';

export type StorageDeps = Pick<HostDeps, 'db' | 'log' | 'hostConnections'>;

export type StoragePoolBody =
  | {
      type: 'iscsi';
      poolId: number;
      name: string;
      hostId?: number;
      portal: string;
      port?: number;
      targetIqn: string;
      chapUsername?: string;
      /** Write-only: handed to each host's libvirt as a private secret, never stored by herd nor answered. */
      chapSecret?: string;
    }
  | {
      type: 'nfs';
      poolId: number;
      name: string;
      hostId?: number;
      server: string;
      export: string;
      mountPoint?: string;
    }
  | { type: 'lvm'; poolId: number; name: string; hostId?: number; volumeGroup: string }
  | { type: 'libvirt'; poolId: number; name: string; hostId?: number };

/** libvirt pool types whose volumes libvirt can create and delete (iSCSI LUNs are made on the array). */
const LIBVIRT_TYPES_WITH_VOLUMES = new Set(['dir', 'fs', 'netfs', 'logical', 'zfs', 'rbd', 'gluster']);
const HERD_TYPE_TO_LIBVIRT = { iscsi: 'iscsi-direct', nfs: 'netfs', lvm: 'logical' } as const;

export interface StoragePoolAnswer {
  id: number;
  poolId: number;
  hostId: number | null;
  type: string;
  name: string;
  libvirtType: string | null;
  params: Record<string, unknown>;
  volumes: number;
  sizeGiB: number;
  attachedGiB: number;
  supportsVolumeCreation: boolean;
  createdAt: string;
}

function toAnswer(row: StoragePoolWithUsage): StoragePoolAnswer {
  const libvirtType = typeof row.params.libvirtType === 'string' ? row.params.libvirtType : null;
  return {
    id: row.id,
    poolId: row.pool_id,
    hostId: row.host_id,
    type: row.type,
    name: row.name,
    libvirtType,
    params: row.params,
    volumes: row.volume_count,
    sizeGiB: Number(row.size_gib),
    attachedGiB: Number(row.attached_gib),
    supportsVolumeCreation: libvirtType !== null && LIBVIRT_TYPES_WITH_VOLUMES.has(libvirtType),
    createdAt: row.created_at.toISOString(),
  };
}

export function toVolumeAnswer(v: VolumeRow) {
  return { id: v.id, name: v.name, path: v.path, sizeGiB: v.size_gib, vmId: v.vm_id };
}

async function driverFor(deps: StorageDeps, host: HostRow): Promise<HostDriver> {
  try {
    return await deps.hostConnections.get(host.uri);
  } catch (err) {
    throw new HttpError(409, 'host_unreachable', `host ${host.hostname}: ${(err as Error).message}`);
  }
}

/** Runs a storage operation on a host, turning libvirt's refusal into a 409 that quotes it. */
async function onHost<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof HttpError) throw err;
    throw new HttpError(409, 'storage_failed', `${what}: ${(err as Error).message}`);
  }
}

/** The hosts to try: the named one (checked to be in the pool's tree), else the pool's enabled hosts. */
async function candidateHosts(deps: StorageDeps, user: AuthUser, body: StoragePoolBody): Promise<HostRow[]> {
  if (body.hostId === undefined) {
    const hosts = await hostsInPoolTree(deps.db, body.poolId);
    if (hosts.length === 0) {
      throw badRequest(
        `poolId: hardware pool ${body.poolId} has no enabled host to reach the storage through`,
        {
          field: 'poolId',
        },
      );
    }
    return hosts;
  }
  const host = await findHost(deps.db, body.hostId);
  if (!host) throw badRequest(`hostId: no host ${body.hostId}`, { field: 'hostId' });
  await assertPool(deps.db, user, host.pool_id, 'view', 'host');
  if (!(await isInPoolTree(deps.db, body.poolId, host.pool_id))) {
    throw badRequest(`hostId: host ${host.hostname} is not in hardware pool ${body.poolId}`, {
      field: 'hostId',
    });
  }
  return [host];
}

function definitionOf(body: Exclude<StoragePoolBody, { type: 'libvirt' }>): StoragePoolDefinition {
  switch (body.type) {
    case 'iscsi':
      return {
        type: 'iscsi',
        name: body.name,
        portal: body.portal,
        port: body.port ?? 3260,
        targetIqn: body.targetIqn,
        ...(body.chapUsername ? { chapUsername: body.chapUsername, chapSecret: body.chapSecret } : {}),
      };
    case 'nfs':
      return {
        type: 'nfs',
        name: body.name,
        server: body.server,
        export: body.export,
        mountPoint: body.mountPoint,
      };
    case 'lvm':
      return { type: 'lvm', name: body.name, volumeGroup: body.volumeGroup };
  }
}

interface ChosenHost {
  host: HostRow;
  driver: HostDriver;
  libvirtType: string;
  /** Undefines what was defined on the hosts (when recording the pool fails afterwards). */
  undo?: () => Promise<void>;
  /** The hosts the pool was defined on (iSCSI: all that answered). */
  definedOn?: number[];
}

/**
 * `libvirt` adopts the pool from the first host that has it; NFS and LVM are defined on the first answering
 * host.
 */
async function chooseHost(
  deps: StorageDeps,
  hosts: HostRow[],
  body: Exclude<StoragePoolBody, { type: 'iscsi' }>,
): Promise<ChosenHost> {
  const tried: string[] = [];
  for (const host of hosts) {
    let driver: HostDriver;
    let existing: Awaited<ReturnType<HostDriver['listStoragePools']>>;
    try {
      driver = await deps.hostConnections.get(host.uri);
      existing = await driver.listStoragePools();
    } catch (err) {
      tried.push(`${host.hostname}: ${(err as Error).message}`);
      continue;
    }
    const found = existing.find((p) => p.name === body.name);
    if (body.type === 'libvirt') {
      if (found) return { host, driver, libvirtType: found.type };
      tried.push(`${host.hostname}: no libvirt storage pool named ${body.name}`);
      continue;
    }
    if (found) throw poolExistsOn(host, body.name);
    await onHost(`defining ${body.type} pool ${body.name} on ${host.hostname}`, () =>
      driver.defineStoragePool(definitionOf(body)),
    );
    return { host, driver, libvirtType: HERD_TYPE_TO_LIBVIRT[body.type] };
  }
  throw badRequest(`name: no host could provide storage pool ${body.name} (${tried.join('; ')})`, {
    field: 'name',
  });
}

function poolExistsOn(host: HostRow, name: string): HttpError {
  return conflict(
    'storage_pool_exists',
    `host ${host.hostname} already has a libvirt storage pool named ${name}: adopt it with type "libvirt"`,
  );
}

/**
 * An iSCSI pool is defined on every answering host of the pool (or on `hostId`): a VM on a LUN may run, and
 * migrate, on any of them, and each host's libvirt keeps the CHAP secret for qemu. When one host's login fails
 * (wrong secret, portal unreachable), the pool and secret are undefined again on every host: nothing stays
 * half-defined. Hosts that do not answer are skipped (logged); at least one must take the pool.
 */
async function defineIscsiOnHosts(
  deps: StorageDeps,
  hosts: HostRow[],
  body: Extract<StoragePoolBody, { type: 'iscsi' }>,
): Promise<ChosenHost> {
  const definition = definitionOf(body);
  const reachable: Array<{ host: HostRow; driver: HostDriver }> = [];
  const tried: string[] = [];
  for (const host of hosts) {
    try {
      const driver = await deps.hostConnections.get(host.uri);
      const existing = await driver.listStoragePools();
      if (existing.some((p) => p.name === body.name)) throw poolExistsOn(host, body.name);
      reachable.push({ host, driver });
    } catch (err) {
      if (err instanceof HttpError) throw err;
      tried.push(`${host.hostname}: ${(err as Error).message}`);
    }
  }
  if (reachable.length === 0) {
    throw badRequest(`name: no host could provide storage pool ${body.name} (${tried.join('; ')})`, {
      field: 'name',
    });
  }
  if (tried.length)
    deps.log.warn({ storagePool: body.name, skipped: tried }, 'iSCSI pool not defined on unreachable hosts');
  const done: HostDriver[] = [];
  const definedOn: number[] = [];
  const undo = async () => {
    await Promise.all(
      done.map((driver) =>
        driver
          .undefineStoragePool?.(definition)
          .catch((e) =>
            deps.log.warn({ err: (e as Error).message, host: driver.uri }, 'undoing iSCSI pool failed'),
          ),
      ),
    );
  };
  for (const { host, driver } of reachable) {
    try {
      await driver.defineStoragePool(definition);
    } catch (err) {
      await undo();
      const message = (err as Error).message;
      throw badRequest(
        `iSCSI target ${body.targetIqn} at ${body.portal}:${body.port ?? 3260} refused host ${host.hostname} (check portal, port, target IQN and CHAP credentials): ${message}`,
        // A login the target refused names the credentials; anything else, where the target is.
        { field: /Authentication failure|CHAP/i.test(message) ? 'chapSecret' : 'portal' },
      );
    }
    done.push(driver);
    definedOn.push(host.id);
  }
  return { ...reachable[0], libvirtType: HERD_TYPE_TO_LIBVIRT.iscsi, undo, definedOn };
}

/** The pool's volumes; of an iSCSI target, its LUNs that hold data (not LUN 0, the target's controller). */
async function volumesOf(driver: HostDriver, pool: string, type: StoragePoolBody['type'] | string) {
  const volumes = await driver.listVolumes(pool);
  return type === 'iscsi' ? volumes.filter((v) => v.sizeGiB > 0) : volumes;
}

/**
 * Registers a storage pool of a hardware pool: `libvirt` adopts one already defined under that name on one
 * of the pool's hosts (or `hostId`); iSCSI, NFS and LVM are defined by herd on the first answering host
 * (or `hostId`). The volumes (LUNs, files, LVs) are read through that host and recorded.
 */
export async function createStoragePool(
  deps: StorageDeps,
  user: AuthUser,
  body: StoragePoolBody,
): Promise<StoragePoolAnswer> {
  await assertPool(deps.db, user, body.poolId, 'modify');
  if ((await poolKind(deps.db, body.poolId)) !== 'hardware') {
    throw badRequest(`poolId: pool ${body.poolId} is a VM pool; storage belongs to hardware pools`, {
      field: 'poolId',
    });
  }
  if (await findStoragePoolByName(deps.db, body.poolId, body.name)) {
    throw conflict(
      'storage_pool_exists',
      `hardware pool ${body.poolId} already has a storage pool named ${body.name}`,
    );
  }
  const hosts = await candidateHosts(deps, user, body);
  const chosen =
    body.type === 'iscsi' ? await defineIscsiOnHosts(deps, hosts, body) : await chooseHost(deps, hosts, body);
  const { host, driver, libvirtType } = chosen;
  // The CHAP secret lives in the hosts' libvirt only.
  const { type, poolId, name, hostId: _hostId, ...rest } = body;
  if ('chapSecret' in rest) delete rest.chapSecret;
  let row: Awaited<ReturnType<typeof insertStoragePool>>;
  let volumes: StorageVolumeInfo[];
  try {
    volumes = await onHost(`listing volumes of ${body.name}`, () => volumesOf(driver, body.name, body.type));
    row = await deps.db.transaction().execute(async (trx) => {
      const pool = await insertStoragePool(trx, {
        poolId,
        hostId: host.id,
        type,
        name,
        params: { ...rest, libvirtType, ...(chosen.definedOn ? { definedOn: chosen.definedOn } : {}) },
      });
      for (const v of volumes) await insertVolume(trx, pool.id, v);
      await audit(trx, {
        userId: user.id,
        action: 'storage_pool.create',
        entityType: 'storage_pool',
        entityId: pool.id,
        after: pool,
      });
      return pool;
    });
  } catch (err) {
    await chosen.undo?.();
    throw err;
  }
  deps.log.info(
    { storagePoolId: row.id, host: host.hostname, volumes: volumes.length },
    'storage pool added',
  );
  return toAnswer((await findStoragePool(deps.db, row.id))!);
}

export async function listStoragePoolsFor(
  deps: StorageDeps,
  user: AuthUser,
  query: { limit: number; offset: number; poolId?: number },
) {
  const poolIds = await visiblePoolIds(deps.db, user);
  const { items, total } = await listStoragePools(deps.db, { poolIds, ...query });
  return { items: items.map(toAnswer), total };
}

async function storagePoolFor(deps: StorageDeps, user: AuthUser, id: number, need: 'view' | 'modify') {
  const row = await findStoragePool(deps.db, id);
  if (!row) throw notFound('storage pool');
  await assertPool(deps.db, user, row.pool_id, need, 'storage pool');
  return row;
}

export async function getStoragePool(
  deps: StorageDeps,
  user: AuthUser,
  id: number,
): Promise<StoragePoolAnswer> {
  return toAnswer(await storagePoolFor(deps, user, id, 'view'));
}

export async function listVolumesFor(
  deps: StorageDeps,
  user: AuthUser,
  id: number,
  page: { limit: number; offset: number },
) {
  await storagePoolFor(deps, user, id, 'view');
  const { items, total } = await listVolumes(deps.db, id, page);
  return { items: items.map(toVolumeAnswer), total };
}

async function hostOf(
  deps: StorageDeps,
  pool: StoragePoolWithUsage,
): Promise<{ host: HostRow; driver: HostDriver }> {
  const host = pool.host_id === null ? undefined : await findHost(deps.db, pool.host_id);
  if (!host) {
    throw conflict(
      'no_host',
      `storage pool ${pool.name} has no host to act through: refresh it with a hostId`,
    );
  }
  return { host, driver: await driverFor(deps, host) };
}

export async function createVolume(
  deps: StorageDeps,
  user: AuthUser,
  id: number,
  body: { name: string; sizeGiB: number },
) {
  const pool = await storagePoolFor(deps, user, id, 'modify');
  if (!toAnswer(pool).supportsVolumeCreation) {
    throw conflict(
      'not_supported',
      `storage pool ${pool.name} (${pool.params.libvirtType ?? pool.type}) cannot create volumes: make the LUN on the storage array and refresh`,
    );
  }
  const { driver } = await hostOf(deps, pool);
  if ((await allVolumes(deps.db, id)).some((v) => v.name === body.name)) {
    throw conflict('volume_exists', `storage pool ${pool.name} already has a volume named ${body.name}`);
  }
  const info = await onHost(`creating volume ${body.name}`, () =>
    driver.createVolume(pool.name, body.name, body.sizeGiB),
  );
  const row = await deps.db.transaction().execute(async (trx) => {
    const volume = await insertVolume(trx, id, info);
    await audit(trx, {
      userId: user.id,
      action: 'volume.create',
      entityType: 'volume',
      entityId: volume.id,
      after: volume,
    });
    return volume;
  });
  return toVolumeAnswer(row);
}

export async function deleteVolume(
  deps: StorageDeps,
  user: AuthUser,
  id: number,
  volumeId: number,
): Promise<void> {
  const pool = await storagePoolFor(deps, user, id, 'modify');
  if (!toAnswer(pool).supportsVolumeCreation) {
    throw conflict(
      'not_supported',
      `storage pool ${pool.name} cannot delete volumes: remove the LUN on the array`,
    );
  }
  const { driver } = await hostOf(deps, pool);
  // The row stays locked while libvirt deletes: a concurrent attach waits, then finds the volume gone.
  await deps.db.transaction().execute(async (trx) => {
    const volume = await lockVolume(trx, id, volumeId);
    if (!volume) throw notFound('volume');
    if (volume.vm_id !== null) {
      throw conflict(
        'volume_attached',
        `volume ${volume.name} is attached to VM ${volume.vm_id}: detach it first`,
      );
    }
    await onHost(`deleting volume ${volume.name}`, () => driver.deleteVolume(pool.name, volume.name));
    await deleteVolumes(trx, [volume.id]);
    await audit(trx, {
      userId: user.id,
      action: 'volume.delete',
      entityType: 'volume',
      entityId: volume.id,
      before: volume,
    });
  });
}

/**
 * Re-reads the pool's volumes through its host (optionally another one of the pool): new ones are recorded,
 * sizes and paths updated, vanished ones forgotten unless a VM still has them (those are reported `missing`).
 */
export async function refreshStoragePool(
  deps: StorageDeps,
  user: AuthUser,
  id: number,
  body: { hostId?: number },
) {
  let pool = await storagePoolFor(deps, user, id, 'modify');
  if (body.hostId !== undefined && body.hostId !== pool.host_id) {
    const host = await findHost(deps.db, body.hostId);
    if (!host || !(await isInPoolTree(deps.db, pool.pool_id, host.pool_id))) {
      throw badRequest(`hostId: host ${body.hostId} is not in this storage pool's hardware pool`, {
        field: 'hostId',
      });
    }
    await setStoragePoolHost(deps.db, id, host.id);
    pool = (await findStoragePool(deps.db, id))!;
  }
  const { driver } = await hostOf(deps, pool);
  const found = await onHost(`refreshing ${pool.name}`, async () => {
    await driver.refreshStoragePool(pool.name);
    return volumesOf(driver, pool.name, pool.type);
  });
  return deps.db.transaction().execute(async (trx) => {
    const known = new Map((await allVolumes(trx, id)).map((v) => [v.name, v]));
    const result = { added: 0, updated: 0, removed: 0, missing: [] as string[] };
    for (const v of found) {
      const row = known.get(v.name);
      known.delete(v.name);
      if (!row) {
        await insertVolume(trx, id, v);
        result.added++;
      } else if (row.size_gib !== v.sizeGiB || row.path !== v.path) {
        await updateVolume(trx, row.id, v);
        result.updated++;
      }
    }
    const gone = [...known.values()];
    await deleteVolumes(
      trx,
      gone.filter((v) => v.vm_id === null).map((v) => v.id),
    );
    result.removed = gone.filter((v) => v.vm_id === null).length;
    result.missing = gone.filter((v) => v.vm_id !== null).map((v) => v.name);
    if (result.missing.length) {
      deps.log.warn({ storagePoolId: id, missing: result.missing }, 'attached volumes vanished from libvirt');
    }
    return result;
  });
}

export async function removeStoragePool(deps: StorageDeps, user: AuthUser, id: number): Promise<void> {
  const pool = await storagePoolFor(deps, user, id, 'modify');
  if (Number(pool.attached_gib) > 0 || (await allVolumes(deps.db, id)).some((v) => v.vm_id !== null)) {
    throw conflict('volume_attached', `storage pool ${pool.name} has volumes attached to VMs`);
  }
  await deps.db.transaction().execute(async (trx) => {
    await deleteStoragePool(trx, id);
    await audit(trx, {
      userId: user.id,
      action: 'storage_pool.delete',
      entityType: 'storage_pool',
      entityId: id,
      before: pool,
    });
  }); // herd defined an iSCSI pool and its CHAP secret on the hosts: they go with it (other pools stay in libvirt).
  if (pool.type === 'iscsi') {
    const params = pool.params as {
      portal?: string;
      port?: number;
      targetIqn?: string;
      definedOn?: number[];
    };
    const definition: StoragePoolDefinition = {
      type: 'iscsi',
      name: pool.name,
      portal: params.portal ?? '',
      port: params.port ?? 3260,
      targetIqn: params.targetIqn ?? '',
    };
    for (const hostId of params.definedOn ?? []) {
      const host = await findHost(deps.db, hostId);
      if (!host) continue;
      await deps.hostConnections
        .get(host.uri)
        .then((driver) => driver.undefineStoragePool(definition))
        .catch((err) =>
          deps.log.warn(
            { err: (err as Error).message, host: host.hostname, storagePool: pool.name },
            'iSCSI pool left on host',
          ),
        );
    }
  }
}
