import { visiblePoolRoles } from '../../api/access/access.service.js';
import type { AuthUser } from '../../api/auth/auth-user.js';
import type { Database } from '../../schema/db.js';
import { allPoolIds } from './live.repository.js';

/**
 * Who hears what. A socket joins, for every pool its user may see:
 * - `pool:<id>`: the pool itself, its hosts, their live figures, tasks on them, its alerts;
 * - `pool:<id>:vms`: every VM of the pool (roles admin and monitor, and the super-admin);
 * - `pool:<id>:owner:<userId>`: the user's own VMs there (role user sees only those).
 * And `user:<id>`: what concerns the user alone (the tasks it asked for); the super-admin also joins `all`,
 * for what belongs to no pool.
 * Events go to the rooms of what they are about, so only sockets allowed to see it receive it.
 */
export const rooms = {
  all: 'all',
  pool: (poolId: number) => `pool:${poolId}`,
  poolVms: (poolId: number) => `pool:${poolId}:vms`,
  owner: (poolId: number, userId: number) => `pool:${poolId}:owner:${userId}`,
  user: (userId: number) => `user:${userId}`,
};

/** The rooms of a VM's events: whoever sees all VMs of its pool, and its owner if the owner sees the pool. */
export function vmRooms(vm: { poolId: number; ownerId: number }): string[] {
  return [rooms.poolVms(vm.poolId), rooms.owner(vm.poolId, vm.ownerId)];
}

/** Every room a user may be in right now. */
export async function roomsOf(db: Database, user: AuthUser): Promise<Set<string>> {
  const out = new Set([rooms.user(user.id)]);
  const roles = await visiblePoolRoles(db, user);
  if (roles === 'all') {
    out.add(rooms.all);
    for (const id of await allPoolIds(db)) out.add(rooms.pool(id)).add(rooms.poolVms(id));
    return out;
  }
  for (const [poolId, role] of roles) {
    out.add(rooms.pool(poolId));
    out.add(role === 'user' ? rooms.owner(poolId, user.id) : rooms.poolVms(poolId));
  }
  return out;
}
