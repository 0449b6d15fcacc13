import { createLogger } from '../../../lib/log.js';
import { createTestDatabase } from '../../../lib/testing/db.js';
import { insertHost } from '../../../lib/testing/fleet.js';
import { createPool, createUserWithToken, grantRole } from '../../../lib/testing/users.js';
import type { DatabaseHandle } from '../../../schema/db.js';
import { prepareTaskQueue } from '../../tasks/task-queue.js';
import { configureVmClaims } from '../vm-claim.repository.js';

/** What the claim tests share: a hardware pool of hosts, a VM pool in it, and its owner. */
export interface ClaimRack {
  database: DatabaseHandle & { name: string };
  owner: { id: number; token: string };
  rack: number;
  vmPool: number;
  /** h1, h2…: 4 CPUs each, allocation ratios 1 (room is exactly what they have). */
  hosts: number[];
}

/**
 * A database of its own with graphile-worker's schema, claims batched with host allocations kept `hostCacheMs`
 * (0: read with every context), an owner with the `user` role on a VM pool, and `hosts` hosts in its hardware pool.
 */
export async function createClaimRack(options: {
  hostCacheMs: number;
  hosts: number;
  memoryMiB: number;
}): Promise<ClaimRack> {
  const database = await createTestDatabase();
  await prepareTaskQueue(database.pool, createLogger('silent'));
  configureVmClaims(database.db, { hostCacheMs: options.hostCacheMs, log: createLogger('silent') });
  const owner = await createUserWithToken(database.db, { username: 'owner' });
  const rack = await createPool(database.db, { name: 'rack' });
  const vmPool = await createPool(database.db, { name: 'vms', kind: 'vm', parentId: rack });
  await grantRole(database.db, vmPool, owner.id, 'user');
  const hosts: number[] = [];
  for (let i = 1; i <= options.hosts; i++) {
    hosts.push(
      await insertHost(database.db, {
        poolId: rack,
        cpus: 4,
        memoryMiB: options.memoryMiB,
        hostname: `h${i}`,
      }),
    );
  }
  await database.db.updateTable('hosts').set({ cpu_allocation_ratio: 1, ram_allocation_ratio: 1 }).execute();
  return { database, owner, rack, vmPool, hosts };
}
