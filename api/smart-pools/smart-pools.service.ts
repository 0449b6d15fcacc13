import type { Database } from '../../schema/db.js';
import { effectiveRole, roleAllows, seesVm } from '../access/access.service.js';
import { audit } from '../audit/audit.service.js';
import type { AuthUser } from '../auth/auth-user.js';
import { conflict, notFound } from '../http/errors.js';
import {
  addMember,
  deleteSmartPool as deleteRow,
  type EntityType,
  findByName,
  findSmartPool,
  insertSmartPool,
  listSmartPools,
  locate,
  members,
  removeMember,
  renameSmartPool,
  type SmartPoolRow,
} from './smart-pools.repository.js';

/**
 * Smart pools: a user's own named collection of pools, hosts, storage pools and VMs across the tree, for
 * viewing and graphing together. Only the owner sees one (even the super-admin does not see others'); its
 * members are shown only while the owner may still see them.
 */
function mapSmartPool(row: SmartPoolRow) {
  return { id: row.id, name: row.name, ownerId: row.user_id, createdAt: row.created_at.toISOString() };
}

async function own(db: Database, user: AuthUser, id: number): Promise<SmartPoolRow> {
  const row = await findSmartPool(db, id);
  if (!row || row.user_id !== user.id) throw notFound('smart pool');
  return row;
}

/** The entity if the user may see it, else undefined: what one may not see, one cannot collect. */
async function visibleEntity(db: Database, user: AuthUser, type: EntityType, id: number) {
  const found = await locate(db, type, id);
  if (!found) return undefined;
  const role = await effectiveRole(db, user, found.pool_id);
  if (!roleAllows(role, 'view')) return undefined;
  if (type === 'vm' && !seesVm(role, { owner_id: found.owner_id! }, user)) return undefined;
  return found;
}

export async function createSmartPool(db: Database, user: AuthUser, name: string) {
  if (await findByName(db, user.id, name))
    throw conflict('name_taken', `you already have a smart pool named ${name}`);
  return db.transaction().execute(async (trx) => {
    const after = mapSmartPool(await insertSmartPool(trx, user.id, name));
    await audit(trx, {
      userId: user.id,
      action: 'smart_pool.create',
      entityType: 'smart_pool',
      entityId: after.id,
      after,
    });
    return { ...after, members: [] };
  });
}

export async function listOwnSmartPools(
  db: Database,
  user: AuthUser,
  page: { limit: number; offset: number },
) {
  const { items, total } = await listSmartPools(db, user.id, page);
  return { total, items: items.map(mapSmartPool) };
}

export async function smartPoolMembers(db: Database, user: AuthUser, id: number) {
  await own(db, user, id);
  const items = [];
  for (const m of await members(db, id)) {
    const found = await visibleEntity(db, user, m.entity_type, m.entity_id);
    if (found) items.push({ entityType: m.entity_type, entityId: m.entity_id, name: found.name });
  }
  return { items, total: items.length };
}

export async function getSmartPool(db: Database, user: AuthUser, id: number) {
  const row = await own(db, user, id);
  return { ...mapSmartPool(row), members: (await smartPoolMembers(db, user, id)).items };
}

export async function renameOwnSmartPool(db: Database, user: AuthUser, id: number, name: string) {
  const before = await own(db, user, id);
  if (before.name !== name && (await findByName(db, user.id, name))) {
    throw conflict('name_taken', `you already have a smart pool named ${name}`);
  }
  return db.transaction().execute(async (trx) => {
    const after = mapSmartPool(await renameSmartPool(trx, id, name));
    await audit(trx, {
      userId: user.id,
      action: 'smart_pool.update',
      entityType: 'smart_pool',
      entityId: id,
      before: mapSmartPool(before),
      after,
    });
    return after;
  });
}

export async function deleteOwnSmartPool(db: Database, user: AuthUser, id: number) {
  const before = await own(db, user, id);
  await db.transaction().execute(async (trx) => {
    await deleteRow(trx, id);
    await audit(trx, {
      userId: user.id,
      action: 'smart_pool.delete',
      entityType: 'smart_pool',
      entityId: id,
      before: mapSmartPool(before),
    });
  });
}

export async function addSmartPoolMember(
  db: Database,
  user: AuthUser,
  id: number,
  type: EntityType,
  entityId: number,
) {
  await own(db, user, id);
  if (!(await visibleEntity(db, user, type, entityId))) throw notFound(type.replace('_', ' '));
  await db.transaction().execute(async (trx) => {
    await addMember(trx, id, type, entityId);
    await audit(trx, {
      userId: user.id,
      action: 'smart_pool.member.add',
      entityType: 'smart_pool',
      entityId: id,
      after: { entityType: type, entityId },
    });
  });
}

export async function removeSmartPoolMember(
  db: Database,
  user: AuthUser,
  id: number,
  type: EntityType,
  entityId: number,
) {
  await own(db, user, id);
  await db.transaction().execute(async (trx) => {
    if (!(await removeMember(trx, id, type, entityId))) throw notFound('member');
    await audit(trx, {
      userId: user.id,
      action: 'smart_pool.member.remove',
      entityType: 'smart_pool',
      entityId: id,
      before: { entityType: type, entityId },
    });
  });
}
