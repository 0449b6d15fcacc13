import { sql } from 'kysely';
import type { Database } from '../../schema/db.js';
import type { PlacementPolicy, QuotaPolicy } from '../../schema/index.js';
import { LIMIT_COLUMNS, type LimitRow } from '../vms/limits.js';

export const POOL_COLUMNS = [
  'id',
  'name',
  'kind',
  'parent_id',
  'quota_policy',
  'quota_grace_seconds',
  'placement_policy',
  'cpu_allocation_ratio',
  'ram_allocation_ratio',
  ...LIMIT_COLUMNS,
  'balancer',
  'created_at',
] as const;

export interface PoolSettings extends Partial<LimitRow> {
  name?: string;
  quota_policy?: QuotaPolicy;
  quota_grace_seconds?: number;
  placement_policy?: PlacementPolicy | null;
  cpu_allocation_ratio?: number | null;
  ram_allocation_ratio?: number | null;
  /** The balancer's settings as JSON text (hardware pools). */
  balancer?: string | null;
}

export async function findPool(db: Database, id: number) {
  return db.selectFrom('pools').select(POOL_COLUMNS).where('id', '=', id).executeTakeFirst();
}
export type PoolRow = NonNullable<Awaited<ReturnType<typeof findPool>>>;

export async function insertPool(
  db: Database,
  row: PoolSettings & { name: string; kind: 'hardware' | 'vm'; parent_id: number | null },
): Promise<PoolRow> {
  return db.insertInto('pools').values(row).returning(POOL_COLUMNS).executeTakeFirstOrThrow();
}

export async function updatePool(
  db: Database,
  id: number,
  set: PoolSettings & { parent_id?: number | null },
) {
  return db
    .updateTable('pools')
    .set(set)
    .where('id', '=', id)
    .returning(POOL_COLUMNS)
    .executeTakeFirstOrThrow();
}

export async function listPools(
  db: Database,
  filter: { ids: number[] | 'all'; parentId?: number; kind?: 'hardware' | 'vm' },
  page: { limit: number; offset: number },
) {
  let q = db.selectFrom('pools');
  if (filter.ids !== 'all') q = q.where('id', '=', sql<number>`any(${filter.ids}::int[])`);
  if (filter.parentId !== undefined) q = q.where('parent_id', '=', filter.parentId);
  if (filter.kind !== undefined) q = q.where('kind', '=', filter.kind);
  const [items, { total }] = await Promise.all([
    q.select(POOL_COLUMNS).orderBy('id').limit(page.limit).offset(page.offset).execute(),
    q.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow(),
  ]);
  return { items, total: Number(total) };
}

/** The pool and everything below it. */
export async function subtreeIds(db: Database, id: number): Promise<number[]> {
  const { rows } = await sql<{ id: number }>`
    WITH RECURSIVE sub(id) AS (
      SELECT id FROM pools WHERE id = ${id}
      UNION
      SELECT p.id FROM pools p JOIN sub ON p.parent_id = sub.id
    )
    SELECT id FROM sub`.execute(db);
  return rows.map((r) => r.id);
}

export async function contents(db: Database, id: number) {
  const count = (table: 'pools' | 'vms' | 'hosts' | 'storage_pools', column: 'parent_id' | 'pool_id') =>
    db
      .selectFrom(table)
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where(column, '=', id)
      .executeTakeFirstOrThrow()
      .then((r) => Number(r.n));
  const [pools, vms, hosts, storagePools] = await Promise.all([
    count('pools', 'parent_id'),
    count('vms', 'pool_id'),
    count('hosts', 'pool_id'),
    count('storage_pools', 'pool_id'),
  ]);
  return { pools, vms, hosts, storagePools };
}

/** Storage pool names that would collide (UNIQUE (pool_id, name)) if moved from one pool to another. */
export async function storagePoolNameClashes(db: Database, from: number, to: number): Promise<string[]> {
  const rows = await db
    .selectFrom('storage_pools as a')
    .innerJoin('storage_pools as b', (j) => j.onRef('a.name', '=', 'b.name'))
    .select('a.name')
    .where('a.pool_id', '=', from)
    .where('b.pool_id', '=', to)
    .execute();
  return rows.map((r) => r.name);
}

export async function moveContents(db: Database, from: number, to: number): Promise<void> {
  await db.updateTable('pools').set({ parent_id: to }).where('parent_id', '=', from).execute();
  await db.updateTable('hosts').set({ pool_id: to }).where('pool_id', '=', from).execute();
  await db.updateTable('storage_pools').set({ pool_id: to }).where('pool_id', '=', from).execute();
}

/** Deletes the pool with its grants and quotas (cascade) and drops it from every smart pool. */
export async function deletePool(db: Database, id: number): Promise<void> {
  await db
    .deleteFrom('smart_pool_members')
    .where('entity_type', '=', 'pool')
    .where('entity_id', '=', id)
    .execute();
  await db.deleteFrom('pools').where('id', '=', id).execute();
}
