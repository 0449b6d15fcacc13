import { type Selectable, sql } from 'kysely';
import type { Database } from '../../schema/db.js';
import type { HostState, HostsTable } from '../../schema/index.js';
import { type VmVisibility, vmVisibleWhere } from '../access/access.service.js';
import type { HostInventory } from './driver/index.js';

export type HostRow = Selectable<HostsTable>;

export function inventoryColumns(inv: HostInventory) {
  return {
    hostname: inv.hostname,
    uuid: inv.uuid,
    arch: inv.arch,
    cpus: inv.cpus,
    cores: inv.cores,
    mhz: inv.mhz,
    memory_mib: inv.memoryMiB,
    nics: JSON.stringify(inv.nics),
    ...(inv.virt
      ? { virt_domain_types: inv.virt.domainTypes, cpu_virt_features: inv.virt.cpuVirtFeatures }
      : {}),
  };
}

export async function insertHost(
  db: Database,
  values: { poolId: number; uri: string; enabled: boolean; inventory: HostInventory },
): Promise<HostRow> {
  return db
    .insertInto('hosts')
    .values({
      pool_id: values.poolId,
      uri: values.uri,
      enabled: values.enabled,
      ...inventoryColumns(values.inventory),
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/**
 * A host announcing itself: new hosts land in `poolId` disabled; a known one (same URI) only gets its
 * inventory refreshed. `created` says which.
 */
export async function upsertRegisteredHost(
  db: Database,
  values: { poolId: number; uri: string; inventory: HostInventory },
): Promise<{ row: HostRow; created: boolean }> {
  const row = await db
    .insertInto('hosts')
    .values({
      pool_id: values.poolId,
      uri: values.uri,
      enabled: false,
      ...inventoryColumns(values.inventory),
    })
    .onConflict((oc) => oc.column('uri').doUpdateSet(inventoryColumns(values.inventory)))
    // xmax is 0 for a freshly inserted row, the updating transaction's id otherwise.
    .returning(sql<boolean>`(xmax = 0)`.as('created'))
    .returningAll()
    .executeTakeFirstOrThrow();
  const { created, ...host } = row as HostRow & { created: boolean };
  return { row: host, created };
}

export function findHost(db: Database, id: number): Promise<HostRow | undefined> {
  return db.selectFrom('hosts').selectAll().where('id', '=', id).executeTakeFirst();
}

export function listHostUris(db: Database): Promise<Array<{ id: number; uri: string; hostname: string }>> {
  return db.selectFrom('hosts').select(['id', 'uri', 'hostname']).orderBy('id').execute();
}

export async function setHostUri(db: Database, id: number, uri: string): Promise<void> {
  await db.updateTable('hosts').set({ uri }).where('id', '=', id).execute();
}

export function findHostByUri(db: Database, uri: string): Promise<HostRow | undefined> {
  return db.selectFrom('hosts').selectAll().where('uri', '=', uri).executeTakeFirst();
}

export async function listHosts(
  db: Database,
  filter: { poolIds: number[] | 'all'; poolId?: number; limit: number; offset: number },
): Promise<{ items: HostRow[]; total: number }> {
  let query = db.selectFrom('hosts');
  if (filter.poolIds !== 'all') {
    if (filter.poolIds.length === 0) return { items: [], total: 0 };
    query = query.where('pool_id', 'in', filter.poolIds);
  }
  if (filter.poolId !== undefined) query = query.where('pool_id', '=', filter.poolId);
  const [items, count] = await Promise.all([
    query.selectAll().orderBy('id').limit(filter.limit).offset(filter.offset).execute(),
    query.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow(),
  ]);
  return { items, total: Number(count.n) };
}

export function allHosts(db: Database): Promise<HostRow[]> {
  return db.selectFrom('hosts').selectAll().orderBy('id').execute();
}

export async function vmsOnHosts(
  db: Database,
  hostIds: number[],
  visibility: VmVisibility,
): Promise<Map<number, Array<{ id: number; name: string; state: string }>>> {
  const out = new Map<number, Array<{ id: number; name: string; state: string }>>();
  if (hostIds.length === 0) return out;
  const rows = await db
    .selectFrom('vms')
    .select(['id', 'name', 'state', 'host_id'])
    .where('host_id', 'in', hostIds)
    .where(vmVisibleWhere(visibility))
    .orderBy('id')
    .execute();
  for (const r of rows) {
    const list = out.get(r.host_id!) ?? [];
    list.push({ id: r.id, name: r.name, state: r.state });
    out.set(r.host_id!, list);
  }
  return out;
}

/** The VM pools of the VMs on a host. */
export async function vmPoolsOnHost(db: Database, hostId: number): Promise<number[]> {
  const rows = await db
    .selectFrom('vms')
    .select('pool_id')
    .distinct()
    .where('host_id', '=', hostId)
    .execute();
  return rows.map((r) => r.pool_id);
}

export async function countVmsOnHost(db: Database, hostId: number): Promise<number> {
  const row = await db
    .selectFrom('vms')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('host_id', '=', hostId)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

export type HostPatch = Partial<
  Pick<
    HostRow,
    | 'enabled'
    | 'pool_id'
    | 'reserved_vcpus'
    | 'reserved_memory_mib'
    | 'cpu_allocation_ratio'
    | 'ram_allocation_ratio'
    | 'virt_type'
  >
>;

export function updateHost(db: Database, id: number, patch: HostPatch): Promise<HostRow | undefined> {
  return db.updateTable('hosts').set(patch).where('id', '=', id).returningAll().executeTakeFirst();
}

export async function deleteHost(db: Database, id: number): Promise<void> {
  await db.deleteFrom('hosts').where('id', '=', id).execute();
}

/** What one heartbeat learnt about a host; answers the state it had before, for change events. */
export async function recordHeartbeat(
  db: Database,
  id: number,
  values: {
    state: HostState;
    heartbeatAt?: Date;
    heartbeatError: string | null;
    lastSeenAt?: Date;
    inventory?: HostInventory;
  },
): Promise<{ previous: HostState; row: HostRow } | undefined> {
  const row = await db
    .updateTable('hosts')
    .from('hosts as old')
    .whereRef('old.id', '=', 'hosts.id')
    .where('hosts.id', '=', id)
    .set({
      state: values.state,
      heartbeat_error: values.heartbeatError,
      ...(values.inventory ? inventoryColumns(values.inventory) : {}),
      ...(values.heartbeatAt ? { heartbeat_at: values.heartbeatAt } : {}),
      // Never move last-seen backwards (another process may know of a later packet).
      ...(values.lastSeenAt
        ? { last_seen_at: sql<Date>`greatest(hosts.last_seen_at, ${values.lastSeenAt}::timestamptz)` }
        : {}),
    })
    .returning('old.state as previous')
    .returningAll('hosts')
    .executeTakeFirst();
  if (!row) return undefined;
  const { previous, ...host } = row as HostRow & { previous: HostState };
  return { previous, row: host };
}

/** Whether pool `candidateId` is `poolId` or below it. */
export async function isInPoolTree(db: Database, poolId: number, candidateId: number): Promise<boolean> {
  const { rows } = await sql<{ found: boolean }>`
    WITH RECURSIVE tree(id) AS (
      SELECT id FROM pools WHERE id = ${poolId}
      UNION
      SELECT p.id FROM pools p JOIN tree ON p.parent_id = tree.id
    )
    SELECT EXISTS (SELECT 1 FROM tree WHERE id = ${candidateId}) AS found`.execute(db);
  return rows[0]?.found ?? false;
}

export async function poolKind(db: Database, poolId: number): Promise<'hardware' | 'vm' | undefined> {
  const row = await db.selectFrom('pools').select('kind').where('id', '=', poolId).executeTakeFirst();
  return row?.kind;
}
