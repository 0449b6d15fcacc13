import { type Selectable, sql } from 'kysely';
import type { Database } from '../../schema/db.js';
import type { StoragePoolsTable, VolumesTable } from '../../schema/index.js';
import type { StorageVolumeInfo } from '../hosts/driver/index.js';
import type { HostRow } from '../hosts/hosts.repository.js';

export type StoragePoolRow = Selectable<StoragePoolsTable>;
export type VolumeRow = Selectable<VolumesTable>;
export type StoragePoolWithUsage = StoragePoolRow & {
  volume_count: number;
  size_gib: number;
  attached_gib: number;
};

/** Enabled hosts in the hardware pool or below it, those answering the heartbeat first. */
export async function hostsInPoolTree(db: Database, poolId: number): Promise<HostRow[]> {
  const { rows } = await sql<HostRow>`
    WITH RECURSIVE tree(id) AS (
      SELECT id FROM pools WHERE id = ${poolId}
      UNION
      SELECT p.id FROM pools p JOIN tree ON p.parent_id = tree.id
    )
    SELECT hosts.* FROM hosts JOIN tree ON hosts.pool_id = tree.id
    WHERE hosts.enabled
    ORDER BY (hosts.state = 'up') DESC, hosts.id`.execute(db);
  return rows;
}

export function insertStoragePool(
  db: Database,
  values: {
    poolId: number;
    hostId: number;
    type: StoragePoolRow['type'];
    name: string;
    params: Record<string, unknown>;
  },
): Promise<StoragePoolRow> {
  return db
    .insertInto('storage_pools')
    .values({
      pool_id: values.poolId,
      host_id: values.hostId,
      type: values.type,
      name: values.name,
      params: JSON.stringify(values.params),
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

function withUsage(db: Database) {
  return db
    .selectFrom('storage_pools')
    .selectAll('storage_pools')
    .select([
      sql<number>`(SELECT count(*)::int FROM volumes v WHERE v.storage_pool_id = storage_pools.id)`.as(
        'volume_count',
      ),
      sql<number>`(SELECT coalesce(sum(v.size_gib), 0) FROM volumes v WHERE v.storage_pool_id = storage_pools.id)`.as(
        'size_gib',
      ),
      sql<number>`(SELECT coalesce(sum(v.size_gib), 0) FROM volumes v
        WHERE v.storage_pool_id = storage_pools.id AND v.vm_id IS NOT NULL)`.as('attached_gib'),
    ]);
}

export function findStoragePool(db: Database, id: number): Promise<StoragePoolWithUsage | undefined> {
  return withUsage(db).where('storage_pools.id', '=', id).executeTakeFirst();
}

export async function findStoragePoolByName(
  db: Database,
  poolId: number,
  name: string,
): Promise<StoragePoolRow | undefined> {
  return db
    .selectFrom('storage_pools')
    .selectAll()
    .where('pool_id', '=', poolId)
    .where('name', '=', name)
    .executeTakeFirst();
}

export async function listStoragePools(
  db: Database,
  filter: { poolIds: number[] | 'all'; poolId?: number; limit: number; offset: number },
): Promise<{ items: StoragePoolWithUsage[]; total: number }> {
  if (filter.poolIds !== 'all' && filter.poolIds.length === 0) return { items: [], total: 0 };
  const scope = <Q extends { where: (...args: any[]) => Q }>(q: Q): Q => {
    let out = q;
    if (filter.poolIds !== 'all') out = out.where('storage_pools.pool_id', 'in', filter.poolIds);
    if (filter.poolId !== undefined) out = out.where('storage_pools.pool_id', '=', filter.poolId);
    return out;
  };
  const [items, count] = await Promise.all([
    scope(withUsage(db)).orderBy('storage_pools.id').limit(filter.limit).offset(filter.offset).execute(),
    scope(
      db.selectFrom('storage_pools').select((eb) => eb.fn.countAll<number>().as('n')),
    ).executeTakeFirstOrThrow(),
  ]);
  return { items, total: Number(count.n) };
}

export async function deleteStoragePool(db: Database, id: number): Promise<void> {
  await db.deleteFrom('storage_pools').where('id', '=', id).execute();
}

export async function setStoragePoolHost(db: Database, id: number, hostId: number): Promise<void> {
  await db.updateTable('storage_pools').set({ host_id: hostId }).where('id', '=', id).execute();
}

export async function listVolumes(
  db: Database,
  storagePoolId: number,
  page: { limit: number; offset: number },
): Promise<{ items: VolumeRow[]; total: number }> {
  const q = db.selectFrom('volumes').where('storage_pool_id', '=', storagePoolId);
  const [items, count] = await Promise.all([
    q.selectAll().orderBy('name').limit(page.limit).offset(page.offset).execute(),
    q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow(),
  ]);
  return { items, total: Number(count.n) };
}

export function allVolumes(db: Database, storagePoolId: number): Promise<VolumeRow[]> {
  return db.selectFrom('volumes').selectAll().where('storage_pool_id', '=', storagePoolId).execute();
}

export function insertVolume(db: Database, storagePoolId: number, v: StorageVolumeInfo): Promise<VolumeRow> {
  return db
    .insertInto('volumes')
    .values({ storage_pool_id: storagePoolId, name: v.name, path: v.path, size_gib: v.sizeGiB })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function updateVolume(db: Database, id: number, v: StorageVolumeInfo): Promise<void> {
  await db.updateTable('volumes').set({ path: v.path, size_gib: v.sizeGiB }).where('id', '=', id).execute();
}

/** The volume, row-locked for the caller's transaction (an attach waits, or is waited for). */
export function lockVolume(db: Database, storagePoolId: number, id: number): Promise<VolumeRow | undefined> {
  return db
    .selectFrom('volumes')
    .selectAll()
    .where('id', '=', id)
    .where('storage_pool_id', '=', storagePoolId)
    .forUpdate()
    .executeTakeFirst();
}

export async function deleteVolumes(db: Database, ids: number[]): Promise<void> {
  if (ids.length) await db.deleteFrom('volumes').where('id', 'in', ids).execute();
}
