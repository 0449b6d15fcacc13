import type { Database } from '../../schema/db.js';
import type { Role } from '../../schema/index.js';
import type { AuthUser } from '../auth/auth-user.js';
import { forbidden, notFound } from '../http/errors.js';
import {
  effectiveRoles,
  grantsUpTheTree,
  hasAnyRole,
  ROLE_RANK,
  type VmVisibility,
  vmVisibleWhere,
} from './access.repository.js';

/**
 * Authorization for every domain. A role granted on a pool holds in every pool below it; the effective role
 * is computed from the tree at check time (recursive query up the ancestors), never copied down.
 *
 * - `admin`: view, control VMs, modify (the pool, its hosts, storage, quotas, grants below it).
 * - `user`: view the pool, and view/control/modify the VMs it owns there (create VMs in it: `control`);
 *   other users' VMs stay invisible (404).
 * - `monitor`: view the pool and all its VMs.
 * - super-admin: everything everywhere.
 */
export type PoolRole = Role;
export type Need = 'view' | 'control' | 'modify';
export type { VmVisibility };
export { vmVisibleWhere };

const ALLOWS: Record<PoolRole | 'super', readonly Need[]> = {
  super: ['view', 'control', 'modify'],
  admin: ['view', 'control', 'modify'],
  user: ['view', 'control'],
  monitor: ['view'],
};

export function roleAllows(role: PoolRole | 'super' | null, need: Need): boolean {
  return role !== null && ALLOWS[role].includes(need);
}

/** The caller's role on a pool: its own grant or an ancestor's, the strongest winning; null if none or no pool. */
export async function effectiveRole(
  db: Database,
  user: AuthUser,
  poolId: number,
): Promise<PoolRole | 'super' | null> {
  const chain = await grantsUpTheTree(db, user.id, poolId);
  if (chain.length === 0) return null;
  if (user.isSuperAdmin) return 'super';
  let best: PoolRole | null = null;
  for (const { role } of chain) {
    if (role && (best === null || ROLE_RANK[role] > ROLE_RANK[best])) best = role;
  }
  return best;
}

/**
 * Throws notFound(`what`) when the caller cannot view the pool (or it does not exist), forbidden when it can
 * view it but not `need`. `what` names the resource the pool stands for (a host's pool: 'host').
 * Returns the caller's role.
 */
export async function assertPool(
  db: Database,
  user: AuthUser,
  poolId: number,
  need: Need,
  what = 'pool',
): Promise<PoolRole | 'super'> {
  const role = await effectiveRole(db, user, poolId);
  if (!roleAllows(role, 'view')) throw notFound(what);
  if (!roleAllows(role, need)) throw forbidden(`${need} on this ${what} needs a stronger role`);
  return role!;
}

/** Every pool at or below any of the caller's grants ('all' for the super-admin), for filtering lists. */
export async function visiblePoolIds(db: Database, user: AuthUser): Promise<number[] | 'all'> {
  if (user.isSuperAdmin) return 'all';
  return [...(await effectiveRoles(db, user.id)).keys()];
}

/** The caller's effective role on every pool it can see ('all' for the super-admin). */
export async function visiblePoolRoles(db: Database, user: AuthUser): Promise<Map<number, PoolRole> | 'all'> {
  if (user.isSuperAdmin) return 'all';
  return effectiveRoles(db, user.id);
}

/**
 * Which VMs the caller may see, for `vmVisibleWhere(visibility)` in a repository's WHERE:
 * all VMs of the pools where it is admin or monitor, its own VMs where it is user.
 */
export async function vmVisibilityFilter(db: Database, user: AuthUser): Promise<VmVisibility> {
  if (user.isSuperAdmin) return 'all';
  const allInPools: number[] = [];
  const ownInPools: number[] = [];
  for (const [poolId, role] of await effectiveRoles(db, user.id)) {
    (role === 'user' ? ownInPools : allInPools).push(poolId);
  }
  return { allInPools, ownInPools, userId: user.id };
}

/** Whether a caller holding `role` on the VM's pool sees the VM. */
export function seesVm(role: PoolRole | 'super' | null, vm: { owner_id: number }, user: AuthUser): boolean {
  if (role === null) return false;
  return role !== 'user' || vm.owner_id === user.id;
}

/**
 * Throws notFound('vm') when the caller may not see the VM, forbidden when it may see but not `need` it.
 * Owners with role `user` may view, control and modify (edit, delete) their own VMs; monitors only view.
 */
export async function assertVm(
  db: Database,
  user: AuthUser,
  vm: { pool_id: number; owner_id: number },
  need: Need,
): Promise<PoolRole | 'super'> {
  const role = await effectiveRole(db, user, vm.pool_id);
  if (!seesVm(role, vm, user)) throw notFound('vm');
  if (role === 'monitor' && need !== 'view') throw forbidden(`${need} on this vm needs a stronger role`);
  return role!;
}

/** Pool admins (anywhere) and the super-admin may look users up, e.g. to grant them roles. */
export async function canListUsers(db: Database, user: AuthUser): Promise<boolean> {
  return user.isSuperAdmin || hasAnyRole(db, user.id, 'admin');
}
