import { type Selectable, sql, type Updateable } from 'kysely';
import type { Database } from '../../schema/db.js';
import type { PlacementPolicy, VirtTypeSetting, VmsTable } from '../../schema/index.js';
import { type VmVisibility, vmVisibleWhere } from '../access/access.service.js';
import { type NewTask, TASK_COLUMNS, taskJob, taskValues } from '../tasks/tasks.repository.js';
import { LIMIT_COLUMNS, type LimitRow } from './limits.js';

export type VmRow = Selectable<VmsTable>;

/** A VM with what placement needs from the pools above it. */
export interface VmWithPools extends VmRow {
  /** The hardware pool holding the VM's pool: its hosts (and those of hardware pools nested in it) are candidates. */
  hardware_pool_id: number;
  /** That hardware pool and the hardware pools nested in it. */
  hardware_pool_ids: number[];
  placement_policy: PlacementPolicy | null;
  nic_count: number;
}

export function vmById(db: Database, id: number): Promise<VmRow | undefined> {
  return db.selectFrom('vms').selectAll().where('id', '=', id).executeTakeFirst();
}

/**
 * The VM, its hardware pool (a VM pool always sits in one) with the hardware pools nested in it, and its NIC count,
 * in one round trip.
 */
export async function vmWithPools(db: Database, id: number): Promise<VmWithPools | undefined> {
  const { rows } = await sql<VmWithPools>`
    SELECT v.*, hw.id AS hardware_pool_id, hw.placement_policy,
      ARRAY(
        WITH RECURSIVE sub(id) AS (
          SELECT hw.id
          UNION ALL
          SELECT p.id FROM pools p JOIN sub ON p.parent_id = sub.id WHERE p.kind = 'hardware'
        )
        SELECT id FROM sub
      ) AS hardware_pool_ids,
      (SELECT count(*)::int FROM vm_nics n WHERE n.vm_id = v.id) AS nic_count
    FROM vms v JOIN pools vp ON vp.id = v.pool_id JOIN pools hw ON hw.id = vp.parent_id
    WHERE v.id = ${id}`.execute(db);
  return rows[0];
}

export async function insertVm(
  db: Database,
  values: {
    uuid: string;
    name: string;
    poolId: number;
    ownerId: number;
    vcpus: number;
    memoryMiB: number;
    imageId: number | null;
    bootNetwork: boolean;
  } & Partial<Pick<VmRow, 'boot_kernel' | 'boot_initrd' | 'boot_cmdline' | 'virt_type' | 'pinned'>> &
    Partial<LimitRow>,
): Promise<number> {
  const limits = Object.fromEntries(LIMIT_COLUMNS.map((c) => [c, values[c]])) as Partial<LimitRow>;
  const { id } = await db
    .insertInto('vms')
    .values({
      ...limits,
      uuid: values.uuid,
      name: values.name,
      pool_id: values.poolId,
      owner_id: values.ownerId,
      vcpus: values.vcpus,
      memory_mib: values.memoryMiB,
      image_id: values.imageId,
      boot_network: values.bootNetwork,
      boot_kernel: values.boot_kernel,
      boot_initrd: values.boot_initrd,
      boot_cmdline: values.boot_cmdline,
      virt_type: values.virt_type,
      pinned: values.pinned,
      state: 'defined',
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return id;
}

/** Inserts NICs whose MAC is not taken; answers how many went in (a clash on a random MAC is retried by the caller). */
export async function insertNics(db: Database, vmId: number, nics: Array<{ mac: string; network: string }>) {
  if (!nics.length) return 0;
  const res = await db
    .insertInto('vm_nics')
    .values(nics.map((n) => ({ vm_id: vmId, mac: n.mac, network: n.network })))
    .onConflict((oc) => oc.column('mac').doNothing())
    .executeTakeFirst();
  return Number(res.numInsertedOrUpdatedRows ?? 0n);
}

export async function volumesForAttach(db: Database, ids: number[]) {
  if (!ids.length) return [];
  return db
    .selectFrom('volumes')
    .innerJoin('storage_pools', 'storage_pools.id', 'volumes.storage_pool_id')
    .select(['volumes.id', 'volumes.name', 'volumes.size_gib', 'volumes.vm_id', 'storage_pools.pool_id'])
    .where('volumes.id', 'in', ids)
    .execute();
}

/** Attaches free volumes only; answers the ids attached (fewer than asked: one was taken meanwhile). */
export async function attachVolumes(db: Database, vmId: number, ids: number[]): Promise<number[]> {
  if (!ids.length) return [];
  const rows = await db
    .updateTable('volumes')
    .set({ vm_id: vmId })
    .where('id', 'in', ids)
    .where('vm_id', 'is', null)
    .returning('id')
    .execute();
  return rows.map((r) => r.id);
}

export async function detachVolumes(db: Database, vmId: number, ids: number[]): Promise<void> {
  if (!ids.length) return;
  await db
    .updateTable('volumes')
    .set({ vm_id: null })
    .where('vm_id', '=', vmId)
    .where('id', 'in', ids)
    .execute();
}

/** The pools a pool sits in, itself first (a volume's storage pool must be on the VM's path to the root). */
export async function poolAndAncestors(db: Database, poolId: number): Promise<number[]> {
  const { rows } = await sql<{ id: number }>`
    WITH RECURSIVE chain(id, parent_id, depth) AS (
      SELECT id, parent_id, 0 FROM pools WHERE id = ${poolId}
      UNION ALL
      SELECT p.id, p.parent_id, chain.depth + 1 FROM pools p JOIN chain ON p.id = chain.parent_id WHERE chain.depth < 64
    )
    SELECT id FROM chain ORDER BY depth`.execute(db);
  return rows.map((r) => r.id);
}

export function imageById(db: Database, id: number) {
  return db
    .selectFrom('images')
    .leftJoin('volumes', 'volumes.id', 'images.iso_volume_id')
    .select([
      'images.id',
      'images.name',
      'images.kernel',
      'images.ipxe_url',
      'images.iso_volume_id',
      'volumes.path as iso_path',
    ])
    .where('images.id', '=', id)
    .executeTakeFirst();
}

/** Volumes, NICs and image of some VMs, for answers and for domain definitions. */
export async function vmParts(db: Database, vmIds: number[]) {
  if (!vmIds.length) return { volumes: [], nics: [], images: [], poolLimits: new Map<number, LimitRow>() };
  const [volumes, nics, images, limits] = await Promise.all([
    db
      .selectFrom('volumes')
      .innerJoin('storage_pools', 'storage_pools.id', 'volumes.storage_pool_id')
      .select([
        'volumes.id',
        'volumes.vm_id',
        'volumes.name',
        'volumes.path',
        'volumes.size_gib',
        'volumes.storage_pool_id',
        'storage_pools.type as storage_type',
        'storage_pools.name as storage_name',
        'storage_pools.params as storage_params',
      ])
      .where('volumes.vm_id', 'in', vmIds)
      .orderBy('volumes.id')
      .execute(),
    db
      .selectFrom('vm_nics')
      .select(['id', 'vm_id', 'mac', 'network'])
      .where('vm_id', 'in', vmIds)
      .orderBy('id')
      .execute(),
    db
      .selectFrom('vms')
      .innerJoin('images', 'images.id', 'vms.image_id')
      .leftJoin('volumes', 'volumes.id', 'images.iso_volume_id')
      .select([
        'vms.id as vm_id',
        'images.id',
        'images.name',
        'images.kernel',
        'images.ipxe_url',
        'images.iso_volume_id',
        'volumes.path as iso_path',
      ])
      .where('vms.id', 'in', vmIds)
      .execute(),
    db
      .selectFrom('vms')
      .innerJoin('pools', 'pools.id', 'vms.pool_id')
      .select(['vms.id as vm_id', ...LIMIT_COLUMNS.map((c) => `pools.${c}` as const)])
      .where('vms.id', 'in', vmIds)
      .execute(),
  ]);
  /** The limits of each VM's pool. */
  const poolLimits = new Map<number, LimitRow>(limits.map(({ vm_id, ...row }) => [vm_id, row]));
  return { volumes, nics, images, poolLimits };
}

export async function listVms(
  db: Database,
  visibility: VmVisibility,
  filter: { poolId?: number; hostId?: number; state?: string; limit: number; offset: number },
): Promise<{ items: VmRow[]; total: number }> {
  let q = db.selectFrom('vms').where(vmVisibleWhere(visibility));
  if (filter.poolId !== undefined) q = q.where('vms.pool_id', '=', filter.poolId);
  if (filter.hostId !== undefined) q = q.where('vms.host_id', '=', filter.hostId);
  if (filter.state) q = q.where('vms.state', '=', filter.state);
  const [items, count] = await Promise.all([
    q.selectAll('vms').orderBy('vms.id').limit(filter.limit).offset(filter.offset).execute(),
    q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow(),
  ]);
  return { items, total: Number(count.n) };
}

export async function updateVm(db: Database, id: number, patch: Updateable<VmsTable>): Promise<void> {
  await db.updateTable('vms').set(patch).where('id', '=', id).execute();
}

export interface VmTransition {
  vmId: number;
  from: string;
  to: string;
  hostId?: number | null;
  migrationHostId?: number | null;
  placement?: unknown;
}

export interface QueuedVmTask {
  taskId: number;
  /** Whether the VM moved to the transitional state (false: it was no longer in `from`). */
  moved: boolean;
}

/**
 * One statement: [lock the host's allocation row and check the room (claim)], insert the task, queue its job and
 * move the VM from `from` to its transitional state pointing at the task. The VM's new state adds it to the host's
 * allocation (trigger) while the row is still locked. The caller rolls back when `moved` is false.
 */
export async function queueVmTask(
  db: Database,
  task: NewTask,
  transition: VmTransition,
): Promise<QueuedVmTask> {
  const set = [
    sql`state = ${transition.to}`,
    sql`task_id = t.id`,
    sql`state_changed_at = now()`,
    ...(transition.hostId === undefined ? [] : [sql`host_id = ${transition.hostId}`]),
    ...(transition.migrationHostId === undefined
      ? []
      : [sql`migration_host_id = ${transition.migrationHostId}`]),
    ...(transition.placement === undefined
      ? []
      : [sql`placement = ${JSON.stringify(transition.placement)}::jsonb`]),
  ];
  const { rows } = await sql<{
    task_id: number;
    moved: number;
  }>`
    WITH t AS (INSERT INTO tasks ${TASK_COLUMNS} ${taskValues(task)} RETURNING id),
      j AS (SELECT ${taskJob(sql<number>`t.id`)} FROM t),
      v AS (UPDATE vms SET ${sql.join(set)} FROM t WHERE vms.id = ${transition.vmId} AND vms.state = ${transition.from}
        RETURNING vms.id)
    SELECT (SELECT id FROM t) AS task_id, (SELECT count(*) FROM v)::int AS moved, (SELECT count(*) FROM j) AS queued
  `.execute(db);
  const row = rows[0];
  return { taskId: row.task_id, moved: row.moved > 0 };
}

/**
 * A task's end state for its VM, applied only while that task still owns the VM (a later action, e.g. a
 * destroy during a graceful shutdown, takes it over). Answers false when it did not.
 */
export async function settleVm(
  db: Database,
  vmId: number,
  taskId: number,
  patch: {
    state: string;
    hostId?: number | null;
    savePath?: string | null;
    startedAt?: 'now' | null;
  },
): Promise<boolean> {
  const res = await db
    .updateTable('vms')
    .set({
      state: patch.state,
      task_id: null,
      migration_host_id: null,
      state_changed_at: sql`now()`,
      ...(patch.hostId === undefined ? {} : { host_id: patch.hostId }),
      ...(patch.savePath === undefined ? {} : { save_path: patch.savePath }),
      ...(patch.startedAt === undefined ? {} : { started_at: patch.startedAt === 'now' ? sql`now()` : null }),
    })
    .where('id', '=', vmId)
    .where('task_id', '=', taskId)
    .executeTakeFirst();
  return res.numUpdatedRows > 0n;
}

/** Undoes a transition whose task was cancelled before it started: back to the state and host it had. */
export async function revertTransition(
  db: Database,
  vmId: number,
  taskId: number,
  to: { state: string; hostId: number | null },
): Promise<boolean> {
  const res = await db
    .updateTable('vms')
    .set({
      state: to.state,
      host_id: to.hostId,
      task_id: null,
      migration_host_id: null,
      state_changed_at: sql`now()`,
    })
    .where('id', '=', vmId)
    .where('task_id', '=', taskId)
    .executeTakeFirst();
  return res.numUpdatedRows > 0n;
}

export async function deleteVmRow(db: Database, vmId: number, taskId?: number): Promise<boolean> {
  let q = db.deleteFrom('vms').where('id', '=', vmId);
  if (taskId !== undefined) q = q.where('task_id', '=', taskId);
  const res = await q.executeTakeFirst();
  return res.numDeletedRows > 0n;
}

export function hostUris(db: Database, ids: number[]) {
  if (!ids.length)
    return Promise.resolve(
      [] as Array<{ id: number; uri: string; hostname: string; virt_type: VirtTypeSetting }>,
    );
  return db
    .selectFrom('hosts')
    .select(['id', 'uri', 'hostname', 'virt_type'])
    .where('id', 'in', ids)
    .execute();
}

/** VMs on a host in a state whose limits apply live (running, paused), with their own and their pool's limits. */
export function vmsWithLiveLimits(db: Database, where: { vmId: number } | { poolId: number }) {
  let q = db
    .selectFrom('vms')
    .innerJoin('pools', 'pools.id', 'vms.pool_id')
    .innerJoin('hosts', 'hosts.id', 'vms.host_id')
    .select([
      'vms.id',
      'vms.uuid',
      'vms.name',
      ...LIMIT_COLUMNS.map((c) => `vms.${c}` as const),
      ...LIMIT_COLUMNS.map((c) => `pools.${c} as pool_${c}` as const),
      'hosts.uri',
      'hosts.hostname',
    ])
    .where('vms.state', 'in', ['running', 'paused']);
  q = 'vmId' in where ? q.where('vms.id', '=', where.vmId) : q.where('vms.pool_id', '=', where.poolId);
  return q.orderBy('vms.id').execute();
}
