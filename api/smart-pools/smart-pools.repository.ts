import type { Database } from '../../schema/db.js';

export type EntityType = 'pool' | 'host' | 'storage_pool' | 'vm';

export async function findSmartPool(db: Database, id: number) {
  return db
    .selectFrom('smart_pools')
    .select(['id', 'user_id', 'name', 'created_at'])
    .where('id', '=', id)
    .executeTakeFirst();
}
export type SmartPoolRow = NonNullable<Awaited<ReturnType<typeof findSmartPool>>>;

export async function findByName(db: Database, userId: number, name: string) {
  return db
    .selectFrom('smart_pools')
    .select('id')
    .where('user_id', '=', userId)
    .where('name', '=', name)
    .executeTakeFirst();
}

export async function listSmartPools(db: Database, userId: number, page: { limit: number; offset: number }) {
  const q = db.selectFrom('smart_pools').where('user_id', '=', userId);
  const [items, { total }] = await Promise.all([
    q
      .select(['id', 'user_id', 'name', 'created_at'])
      .orderBy('id')
      .limit(page.limit)
      .offset(page.offset)
      .execute(),
    q.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow(),
  ]);
  return { items, total: Number(total) };
}

export async function insertSmartPool(db: Database, userId: number, name: string): Promise<SmartPoolRow> {
  return db
    .insertInto('smart_pools')
    .values({ user_id: userId, name })
    .returning(['id', 'user_id', 'name', 'created_at'])
    .executeTakeFirstOrThrow();
}

export async function renameSmartPool(db: Database, id: number, name: string): Promise<SmartPoolRow> {
  return db
    .updateTable('smart_pools')
    .set({ name })
    .where('id', '=', id)
    .returning(['id', 'user_id', 'name', 'created_at'])
    .executeTakeFirstOrThrow();
}

export async function deleteSmartPool(db: Database, id: number): Promise<void> {
  await db.deleteFrom('smart_pools').where('id', '=', id).execute();
}

export async function members(db: Database, smartPoolId: number) {
  return db
    .selectFrom('smart_pool_members')
    .select(['entity_type', 'entity_id'])
    .where('smart_pool_id', '=', smartPoolId)
    .orderBy('entity_type')
    .orderBy('entity_id')
    .execute();
}

export async function addMember(
  db: Database,
  smartPoolId: number,
  type: EntityType,
  id: number,
): Promise<void> {
  await db
    .insertInto('smart_pool_members')
    .values({ smart_pool_id: smartPoolId, entity_type: type, entity_id: id })
    .onConflict((oc) => oc.doNothing())
    .execute();
}

export async function removeMember(
  db: Database,
  smartPoolId: number,
  type: EntityType,
  id: number,
): Promise<boolean> {
  const res = await db
    .deleteFrom('smart_pool_members')
    .where('smart_pool_id', '=', smartPoolId)
    .where('entity_type', '=', type)
    .where('entity_id', '=', id)
    .executeTakeFirst();
  return res.numDeletedRows > 0n;
}

/** The entity's name and the pool it belongs to (a VM also its owner), or undefined when it does not exist. */
export async function locate(
  db: Database,
  type: EntityType,
  id: number,
): Promise<{ name: string; pool_id: number; owner_id?: number } | undefined> {
  switch (type) {
    case 'pool':
      return db.selectFrom('pools').select(['name', 'id as pool_id']).where('id', '=', id).executeTakeFirst();
    case 'host':
      return db
        .selectFrom('hosts')
        .select(['hostname as name', 'pool_id'])
        .where('id', '=', id)
        .executeTakeFirst();
    case 'storage_pool':
      return db
        .selectFrom('storage_pools')
        .select(['name', 'pool_id'])
        .where('id', '=', id)
        .executeTakeFirst();
    case 'vm':
      return db
        .selectFrom('vms')
        .select(['name', 'pool_id', 'owner_id'])
        .where('id', '=', id)
        .executeTakeFirst();
  }
}
