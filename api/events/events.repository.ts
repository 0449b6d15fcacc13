import { type Expression, type SqlBool, sql } from 'kysely';
import type { Database } from '../../schema/db.js';
import { type VmVisibility, vmVisibleWhere } from '../access/access.service.js';

/** collectd's severity names as the events table keeps them. */
export type StoredSeverity = 'FAILURE' | 'WARNING' | 'OKAY';

export interface EventFilter {
  hostId?: number;
  vmId?: number;
  severity?: StoredSeverity;
  plugin?: string;
  type?: string;
  since?: Date;
  until?: Date;
  limit: number;
  offset: number;
}

/** Which events a caller sees: those of hosts in `hostPools`, those of the VMs it sees; 'all' for the super-admin. */
export type EventVisibility = 'all' | { hostPools: number[]; vms: VmVisibility };

export interface EventRow {
  id: number;
  time: Date;
  received_at: Date;
  host: string;
  plugin: string;
  plugin_instance: string;
  type: string;
  type_instance: string;
  severity: string;
  message: string;
  host_id: number | null;
  vm_id: number | null;
}

/**
 * A VM's notification is seen by who sees the VM; any other by who sees its host's pool; one about no known
 * host or VM (or one since deleted) only by the super-admin.
 */
function visibleWhere(v: EventVisibility): Expression<SqlBool> {
  if (v === 'all') return sql<SqlBool>`true`;
  return sql<SqlBool>`((e.vm_id IS NULL AND h.pool_id = any(${v.hostPools}::int[]))
    OR (e.vm_id IS NOT NULL AND vms.id IS NOT NULL AND ${vmVisibleWhere(v.vms)}))`;
}

/** Visible events matching the filter, newest first, and how many there are. */
export async function listEvents(
  db: Database,
  visibility: EventVisibility,
  f: EventFilter,
): Promise<{ items: EventRow[]; total: number }> {
  let q = db
    .selectFrom('events as e')
    .leftJoin('hosts as h', 'h.id', 'e.host_id')
    .leftJoin('vms', 'vms.id', 'e.vm_id')
    .where(visibleWhere(visibility));
  if (f.hostId !== undefined) q = q.where('e.host_id', '=', f.hostId);
  if (f.vmId !== undefined) q = q.where('e.vm_id', '=', f.vmId);
  if (f.severity !== undefined) q = q.where('e.severity', '=', f.severity);
  if (f.plugin !== undefined) q = q.where('e.plugin', '=', f.plugin);
  if (f.type !== undefined) q = q.where('e.type', '=', f.type);
  if (f.since !== undefined) q = q.where('e.time', '>=', f.since);
  if (f.until !== undefined) q = q.where('e.time', '<', f.until);
  const [items, { total }] = await Promise.all([
    q
      .select([
        'e.id',
        'e.time',
        'e.received_at',
        'e.host',
        'e.plugin',
        'e.plugin_instance',
        'e.type',
        'e.type_instance',
        'e.severity',
        'e.message',
        'e.host_id',
        'e.vm_id',
      ])
      .orderBy('e.time', 'desc')
      .orderBy('e.id', 'desc')
      .limit(f.limit)
      .offset(f.offset)
      .execute(),
    q.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow(),
  ]);
  // events.id is bigint, parsed as a number (schema/db.ts)
  return { items: items.map((r) => ({ ...r, id: Number(r.id) })), total: Number(total) };
}

/** What a `notification` alert rule counts (every field optional; `messageMatch`: contained, any case). */
export interface NotificationMatch {
  severity?: StoredSeverity;
  plugin?: string;
  type?: string;
  messageMatch?: string;
}

/** How many matching notifications each host had with `from < time <= to` (hosts with none are left out). */
export async function countEventsByHost(
  db: Database,
  hostIds: number[],
  match: NotificationMatch,
  from: Date,
  to: Date,
): Promise<Map<number, number>> {
  if (hostIds.length === 0) return new Map();
  let q = db
    .selectFrom('events')
    .select(['host_id', (eb) => eb.fn.countAll<number>().as('n')])
    .where('host_id', 'in', hostIds)
    .where('time', '>', from)
    .where('time', '<=', to);
  if (match.severity !== undefined) q = q.where('severity', '=', match.severity);
  if (match.plugin !== undefined) q = q.where('plugin', '=', match.plugin);
  if (match.type !== undefined) q = q.where('type', '=', match.type);
  if (match.messageMatch !== undefined)
    q = q.where(sql<SqlBool>`strpos(lower(message), lower(${match.messageMatch})) > 0`);
  const rows = await q.groupBy('host_id').execute();
  return new Map(rows.map((r) => [r.host_id!, Number(r.n)]));
}

/** Forgets notifications received before `before`; answers how many. */
export async function pruneEvents(db: Database, before: Date): Promise<number> {
  const r = await db.deleteFrom('events').where('received_at', '<', before).executeTakeFirst();
  return Number(r.numDeletedRows);
}
