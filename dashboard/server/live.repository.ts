import { sql } from 'kysely';
import type { EventRow } from '../../api/events/events.repository.js';
import type { Database } from '../../schema/db.js';

export interface HostRow {
  id: number;
  pool_id: number;
  hostname: string;
  state: string;
  enabled: boolean;
}

export interface VmRow {
  id: number;
  pool_id: number;
  owner_id: number;
  host_id: number | null;
  name: string;
  uuid: string;
  vcpus: number;
  state: string;
  state_changed_at: Date;
}

export interface TaskRow {
  id: number;
  state: string;
  action: string;
  target_type: string;
  target_id: number;
  pool_id: number | null;
  user_id: number | null;
  progress: number | null;
  error: string | null;
  /** The owner of the VM the task acts on, if it acts on one. */
  vm_owner_id: number | null;
}

export async function allPoolIds(db: Database): Promise<number[]> {
  return (await db.selectFrom('pools').select('id').execute()).map((r) => r.id);
}

export function allHosts(db: Database): Promise<HostRow[]> {
  return db.selectFrom('hosts').select(['id', 'pool_id', 'hostname', 'state', 'enabled']).execute();
}

/** The VMs whose state changed at or after `since` (all when undefined), with the database's clock. */
export async function vmsChangedSince(
  db: Database,
  since: Date | undefined,
): Promise<{ rows: VmRow[]; now: Date }> {
  const changed = since ? sql`state_changed_at >= ${since}` : sql`true`;
  const { rows } = await sql<VmRow & { db_now: Date }>`
    SELECT id, pool_id, owner_id, host_id, name, uuid, vcpus, state, state_changed_at, now() AS db_now FROM vms WHERE ${changed}`.execute(
    db,
  );
  const now = rows[0]?.db_now ?? (await sql<{ now: Date }>`SELECT now()`.execute(db)).rows[0].now;
  return { rows, now };
}

export async function allVmIds(db: Database): Promise<number[]> {
  return (await db.selectFrom('vms').select('id').execute()).map((r) => r.id);
}

/** Tasks newer than `afterId`, and the ones listed (those still queued or running when last seen). */
export async function tasksToWatch(db: Database, afterId: number, ids: number[]): Promise<TaskRow[]> {
  const { rows } = await sql<TaskRow>`
    SELECT t.id, t.state, t.action, t.target_type, t.target_id, coalesce(t.pool_id, v.pool_id) AS pool_id, t.user_id,
      t.progress, t.error, v.owner_id AS vm_owner_id
    FROM tasks t LEFT JOIN vms v ON t.target_type = 'vm' AND v.id = t.target_id
    WHERE t.id > ${afterId} OR t.id = ANY(${ids}::int[])
    ORDER BY t.id`.execute(db);
  return rows;
}

export async function lastTaskId(db: Database): Promise<number> {
  const { rows } = await sql<{ id: number | null }>`SELECT max(id) AS id FROM tasks`.execute(db);
  return rows[0]?.id ?? 0;
}

export async function activeTaskIds(db: Database): Promise<number[]> {
  const rows = await db
    .selectFrom('tasks')
    .select('id')
    .where('state', 'in', ['queued', 'running'])
    .execute();
  return rows.map((r) => r.id);
}

export interface EventLiveRow extends EventRow {
  /** The pool of the host it came from, and of the VM (with its owner) it is about; null when unknown. */
  host_pool_id: number | null;
  vm_pool_id: number | null;
  vm_owner_id: number | null;
}

/**
 * collectd notifications stored after `after` (received at, then id; oldest first, at most `limit`), with the
 * database's clock.
 */
export async function eventsReceivedAfter(
  db: Database,
  after: { at: Date; id: number },
  limit: number,
): Promise<{ rows: EventLiveRow[]; now: Date }> {
  const { rows } = await sql<EventLiveRow>`
    SELECT e.id, e.time, e.received_at, e.host, e.plugin, e.plugin_instance, e.type, e.type_instance, e.severity,
      e.message, e.host_id, e.vm_id, h.pool_id AS host_pool_id, v.pool_id AS vm_pool_id, v.owner_id AS vm_owner_id
    FROM events e LEFT JOIN hosts h ON h.id = e.host_id LEFT JOIN vms v ON v.id = e.vm_id
    WHERE (e.received_at, e.id) > (${after.at}, ${after.id})
    ORDER BY e.received_at, e.id
    LIMIT ${limit}`.execute(db);
  const now = (await sql<{ now: Date }>`SELECT now()`.execute(db)).rows[0].now;
  return { rows: rows.map((r) => ({ ...r, id: Number(r.id) })), now };
}
