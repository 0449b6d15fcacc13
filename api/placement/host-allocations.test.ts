import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase } from '../../lib/testing/db.js';
import { insertHost, insertVm } from '../../lib/testing/fleet.js';
import { createPool, createUserWithToken } from '../../lib/testing/users.js';
import type { DatabaseHandle } from '../../schema/db.js';
import { isActive, VM_STATES } from '../vms/vm-states.js';
import { allocationDrift } from './placement.repository.js';

/** host_allocations is kept by triggers on vms: whatever changes a VM, the sums stay what the VMs hold. */
let database: DatabaseHandle;
let owner: number;
let pool: number;
let h1: number;
let h2: number;

beforeAll(async () => {
  database = await createTestDatabase();
  const db = database.db;
  const rack = await createPool(db, { name: 'rack' });
  pool = await createPool(db, { name: 'team', kind: 'vm', parentId: rack });
  owner = (await createUserWithToken(db, { username: 'o' })).id;
  h1 = await insertHost(db, { poolId: rack, cpus: 8, memoryMiB: 8192 });
  h2 = await insertHost(db, { poolId: rack, cpus: 8, memoryMiB: 8192 });
});
afterAll(() => database.close());

const allocation = async (hostId: number) =>
  database.db
    .selectFrom('host_allocations')
    .select(['vcpus', 'memory_mib'])
    .where('host_id', '=', hostId)
    .executeTakeFirstOrThrow();

test('every new host has its row; the trigger counts exactly the ACTIVE_VM_STATES', async () => {
  expect(await allocation(h1)).toEqual({ vcpus: 0, memory_mib: 0 });
  const db = database.db;
  for (const state of VM_STATES) {
    const id = await insertVm(db, {
      poolId: pool,
      ownerId: owner,
      state: 'shutoff',
      vcpus: 2,
      memoryMiB: 256,
    });
    await db.updateTable('vms').set({ host_id: h1 }).where('id', '=', id).execute();
    await db.updateTable('vms').set({ state }).where('id', '=', id).execute();
    expect(await allocation(h1), state).toEqual(
      isActive(state) ? { vcpus: 2, memory_mib: 256 } : { vcpus: 0, memory_mib: 0 },
    );
    await db.deleteFrom('vms').where('id', '=', id).execute();
    expect(await allocation(h1), state).toEqual({ vcpus: 0, memory_mib: 0 });
  }
});

test('moves, resizes, migrations and deletions keep the sums', async () => {
  const db = database.db;
  const a = await insertVm(db, { poolId: pool, ownerId: owner, state: 'running', vcpus: 1, memoryMiB: 512 });
  const b = await insertVm(db, { poolId: pool, ownerId: owner, state: 'shutoff', vcpus: 4, memoryMiB: 1024 });
  await db.updateTable('vms').set({ host_id: h1 }).where('id', 'in', [a, b]).execute();
  expect(await allocation(h1)).toEqual({ vcpus: 1, memory_mib: 512 });
  // Migrating: room held on both hosts; done: only on the destination.
  await db
    .updateTable('vms')
    .set({ state: 'migrating', migration_host_id: h2 })
    .where('id', '=', a)
    .execute();
  expect([await allocation(h1), await allocation(h2)]).toEqual([
    { vcpus: 1, memory_mib: 512 },
    { vcpus: 1, memory_mib: 512 },
  ]);
  await db
    .updateTable('vms')
    .set({ state: 'running', host_id: h2, migration_host_id: null })
    .where('id', '=', a)
    .execute();
  expect([await allocation(h1), await allocation(h2)]).toEqual([
    { vcpus: 0, memory_mib: 0 },
    { vcpus: 1, memory_mib: 512 },
  ]);
  await db.updateTable('vms').set({ vcpus: 3, memory_mib: 2048 }).where('id', '=', a).execute();
  await db.updateTable('vms').set({ state: 'starting' }).where('id', '=', b).execute();
  expect([await allocation(h1), await allocation(h2)]).toEqual([
    { vcpus: 4, memory_mib: 1024 },
    { vcpus: 3, memory_mib: 2048 },
  ]);
  await db.deleteFrom('vms').where('id', 'in', [a, b]).execute();
  expect(await allocationDrift(db)).toEqual([]);
});
