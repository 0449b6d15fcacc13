import type { Database } from '../../schema/db.js';
import type { PlacementPolicy, QuotaPolicy } from '../../schema/index.js';
import { assertPool, effectiveRole, roleAllows, visiblePoolRoles } from '../access/access.service.js';
import { audit } from '../audit/audit.service.js';
import type { AuthUser } from '../auth/auth-user.js';
import { type BalancerSettingsInput, effectiveSettings, mergeSettings } from '../balancer/settings.js';
import { badRequest, conflict, forbidden } from '../http/errors.js';
import { lockPools } from '../quota/quota.repository.js';
import { assertPoolMayLimit, LIMITS, type LimitInput, limitColumns, limitsOf } from '../vms/limits.js';
import { applyPoolLimits, type LimitDeps } from '../vms/limits.service.js';
import {
  contents,
  deletePool as deletePoolRow,
  findPool,
  insertPool,
  listPools,
  moveContents,
  type PoolRow,
  type PoolSettings,
  storagePoolNameClashes,
  subtreeIds,
  updatePool,
} from './pools.repository.js';

/** The default hardware pool made by the first migration; it always exists. */
export const DEFAULT_POOL_ID = 1;

/** A VM pool's limits (see limits.ts) are the ceilings of its VMs'. */
export interface PoolSettingsInput extends LimitInput {
  name?: string;
  quotaPolicy?: QuotaPolicy;
  quotaGraceSeconds?: number;
  placementPolicy?: PlacementPolicy | null;
  cpuAllocationRatio?: number | null;
  ramAllocationRatio?: number | null;
  /** Hardware pools: the balancer's settings to change. */
  balancer?: BalancerSettingsInput | null;
}

export function mapPool(row: PoolRow, role: string | null) {
  return {
    id: row.id,
    name: row.name,
    kind: row.kind,
    parentId: row.parent_id,
    quotaPolicy: row.quota_policy,
    quotaGraceSeconds: row.quota_grace_seconds,
    placementPolicy: row.placement_policy,
    cpuAllocationRatio: row.cpu_allocation_ratio,
    ramAllocationRatio: row.ram_allocation_ratio,
    ...limitsOf(row),
    balancer: row.kind === 'hardware' ? effectiveSettings(row.balancer) : null,
    createdAt: row.created_at.toISOString(),
    /** The caller's effective role here. */
    role,
  };
}

function toSettings(input: PoolSettingsInput): PoolSettings {
  const out: PoolSettings = {};
  if (input.name !== undefined) out.name = input.name;
  if (input.quotaPolicy !== undefined) out.quota_policy = input.quotaPolicy;
  if (input.quotaGraceSeconds !== undefined) out.quota_grace_seconds = input.quotaGraceSeconds;
  if (input.placementPolicy !== undefined) out.placement_policy = input.placementPolicy;
  if (input.cpuAllocationRatio !== undefined) out.cpu_allocation_ratio = input.cpuAllocationRatio;
  if (input.ramAllocationRatio !== undefined) out.ram_allocation_ratio = input.ramAllocationRatio;
  return { ...out, ...limitColumns(input) };
}

/**
 * Checks that `parentId` may hold a pool of `kind` and that the caller may put one there: a VM pool lives in
 * a hardware pool, a hardware pool in a hardware pool or at the root (super-admin only).
 */
async function assertParent(db: Database, user: AuthUser, kind: 'hardware' | 'vm', parentId: number | null) {
  if (parentId === null) {
    if (kind === 'vm')
      throw badRequest('parentId: a VM pool lives inside a hardware pool', { field: 'parentId' });
    if (!user.isSuperAdmin) throw forbidden('only the super-admin makes root pools');
    return;
  }
  await assertPool(db, user, parentId, 'modify');
  const parent = (await findPool(db, parentId))!;
  if (parent.kind !== 'hardware') {
    throw badRequest('parentId: pools live inside hardware pools, not VM pools', { field: 'parentId' });
  }
}

export async function createPool(
  db: Database,
  user: AuthUser,
  input: PoolSettingsInput & { name: string; kind: 'hardware' | 'vm'; parentId?: number | null },
) {
  const parentId = input.parentId ?? null;
  assertPoolMayLimit(input.kind, input);
  await assertParent(db, user, input.kind, parentId);
  return db.transaction().execute(async (trx) => {
    const row = await insertPool(trx, {
      ...toSettings(input),
      name: input.name,
      kind: input.kind,
      parent_id: parentId,
    });
    const after = mapPool(row, null);
    await audit(trx, { userId: user.id, action: 'pool.create', entityType: 'pool', entityId: row.id, after });
    return { ...after, role: await effectiveRole(trx, user, row.id) };
  });
}

export async function getPool(db: Database, user: AuthUser, id: number) {
  const role = await assertPool(db, user, id, 'view');
  return mapPool((await findPool(db, id))!, role);
}

export async function listVisiblePools(
  db: Database,
  user: AuthUser,
  filter: { parentId?: number; kind?: 'hardware' | 'vm' },
  page: { limit: number; offset: number },
) {
  const roles = await visiblePoolRoles(db, user);
  const { items, total } = await listPools(
    db,
    { ...filter, ids: roles === 'all' ? 'all' : [...roles.keys()] },
    page,
  );
  return {
    total,
    items: items.map((r) => mapPool(r, roles === 'all' ? 'super' : (roles.get(r.id) ?? null))),
  };
}

/**
 * Changes settings, and moves the pool when `parentId` changes (modify on the pool and on the new parent). A new
 * limit goes at once to the pool's running VMs (`hosts`).
 */
export async function patchPool(
  db: Database,
  user: AuthUser,
  id: number,
  input: PoolSettingsInput & { parentId?: number | null },
  hosts: Omit<LimitDeps, 'db'> = {},
) {
  await assertPool(db, user, id, 'modify');
  const before = (await findPool(db, id))!;
  assertPoolMayLimit(before.kind, input);
  if (input.balancer !== undefined && before.kind !== 'hardware')
    throw badRequest('balancer: only hardware pools have a balancer', { field: 'balancer' });
  const moving = input.parentId !== undefined && input.parentId !== before.parent_id;
  if (moving) {
    if (id === DEFAULT_POOL_ID) throw conflict('default_pool', 'the default hardware pool stays at the root');
    if (before.parent_id === null && !user.isSuperAdmin)
      throw forbidden('only the super-admin moves a root pool');
    await assertParent(db, user, before.kind, input.parentId!);
  }
  const answer = await db.transaction().execute(async (trx) => {
    const set: PoolSettings & { parent_id?: number | null } = toSettings(input);
    if (input.balancer === null) set.balancer = null;
    else if (input.balancer !== undefined)
      set.balancer = JSON.stringify(mergeSettings(before.balancer, input.balancer));
    if (moving) {
      const newParent = input.parentId!;
      await lockPools(trx, [
        id,
        ...(before.parent_id === null ? [] : [before.parent_id]),
        ...(newParent === null ? [] : [newParent]),
      ]);
      if (newParent !== null && (await subtreeIds(trx, id)).includes(newParent)) {
        throw badRequest('parentId: a pool cannot move below itself', { field: 'parentId' });
      }
      set.parent_id = newParent;
    }
    if (!Object.keys(set).length) return mapPool(before, await effectiveRole(trx, user, id));
    const row = await updatePool(trx, id, set);
    await audit(trx, {
      userId: user.id,
      action: moving ? 'pool.move' : 'pool.update',
      entityType: 'pool',
      entityId: id,
      before: mapPool(before, null),
      after: mapPool(row, null),
    });
    return mapPool(row, await effectiveRole(trx, user, id));
  });
  const changed = LIMITS.filter((l) => input[l.field] !== undefined && input[l.field] !== before[l.column]);
  await applyPoolLimits(
    { db, ...hosts },
    id,
    changed.map((l) => l.field),
  );
  return answer;
}

/**
 * Deletes an empty pool; with `moveContentsToParent` a hardware pool's pools, hosts and storage pools move to
 * its parent first. VMs cannot move to a hardware pool, so a VM pool with VMs is never deleted. Needs modify on
 * the parent (the super-admin for a root pool).
 */
export async function deletePool(db: Database, user: AuthUser, id: number, moveContentsToParent: boolean) {
  await assertPool(db, user, id, 'view');
  const pool = (await findPool(db, id))!;
  if (id === DEFAULT_POOL_ID) throw conflict('default_pool', 'the default hardware pool cannot be deleted');
  if (pool.parent_id === null) {
    if (!user.isSuperAdmin) throw forbidden('only the super-admin deletes a root pool');
  } else if (!roleAllows(await effectiveRole(db, user, pool.parent_id), 'modify')) {
    throw forbidden('deleting a pool needs the admin role on its parent pool');
  }
  await db.transaction().execute(async (trx) => {
    await lockPools(trx, pool.parent_id === null ? [id] : [id, pool.parent_id]);
    const inside = await contents(trx, id);
    const empty = inside.pools + inside.vms + inside.hosts + inside.storagePools === 0;
    if (!empty) {
      if (!moveContentsToParent) {
        throw conflict(
          'pool_not_empty',
          'the pool is not empty: move its contents or pass ?moveContentsToParent=true',
          {
            contents: inside,
          },
        );
      }
      if (inside.vms > 0) {
        throw conflict(
          'pool_has_vms',
          'VMs live in VM pools: move or delete them before deleting their pool',
          {
            contents: inside,
          },
        );
      }
      if (pool.parent_id === null)
        throw conflict('no_parent', 'a root pool has no parent to take its contents');
      const clashes = await storagePoolNameClashes(trx, id, pool.parent_id);
      if (clashes.length) {
        throw conflict('name_clash', `the parent already has storage pools named ${clashes.join(', ')}`, {
          clashes,
        });
      }
      await moveContents(trx, id, pool.parent_id);
    }
    await deletePoolRow(trx, id);
    await audit(trx, {
      userId: user.id,
      action: 'pool.delete',
      entityType: 'pool',
      entityId: id,
      before: { ...mapPool(pool, null), movedToParent: empty ? null : inside },
    });
  });
}
