import { sql } from 'kysely';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase } from '../../lib/testing/db.js';
import { insertVm } from '../../lib/testing/fleet.js';
import { createPool, createUserWithToken } from '../../lib/testing/users.js';
import type { DatabaseHandle } from '../../schema/db.js';
import { ACTIVE_VM_STATES } from '../vms/vm-states.js';
import { recount, usage } from './quota.service.js';

/**
 * pool_usage (migration T81) follows every change of VMs, NICs and volumes: after each, a recount from the raw
 * rows finds no difference with what usage (and the quota claim) read.
 */
let database: DatabaseHandle;
let hw: number;
let poolA: number;
let poolB: number;
let alice: number;
let bob: number;

beforeAll(async () => {
  database = await createTestDatabase();
  hw = await createPool(database.db, { name: 'hw' });
  poolA = await createPool(database.db, { name: 'a', kind: 'vm', parentId: hw });
  poolB = await createPool(database.db, { name: 'b', kind: 'vm', parentId: hw });
  alice = (await createUserWithToken(database.db, { username: 'alice' })).id;
  bob = (await createUserWithToken(database.db, { username: 'bob' })).id;
});
afterAll(() => database.close());

test('the active states are the same in SQL and in TypeScript', async () => {
  const { rows } = await sql<{ states: string[] }>`SELECT herd_active_vm_states() AS states`.execute(
    database.db,
  );
  expect([...rows[0].states].sort()).toEqual([...ACTIVE_VM_STATES].sort());
  await expect(
    sql`SELECT herd_quota_claim(${poolA}::int, ${alice}::int, ARRAY['running']::text[], 1, 1, 0, 0, 1)`.execute(
      database.db,
    ),
  ).rejects.toThrow(/differ from herd_active_vm_states/);
});

test('usage follows every change of VMs, NICs and volumes', async () => {
  const db = database.db;
  const totalOf = async (poolId: number) => {
    const u = await usage(db, poolId);
    const t = u.total;
    return {
      vcpus: t.vcpus.used,
      memoryMiB: t.memoryMiB.used,
      storageGiB: t.storageGiB.used,
      nics: t.nics.used,
      vms: t.vms.used,
      users: u.users.map((x) => x.userId),
    };
  };
  const step = async (change: () => Promise<unknown>, poolId: number, expected: object) => {
    await change();
    expect((await recount(db)).differences).toEqual([]);
    expect(await totalOf(poolId)).toEqual(expected);
  };
  const setVm = (values: Record<string, unknown>) =>
    db.updateTable('vms').set(values).where('id', '=', id).execute();

  let id = 0;
  await step(
    async () => {
      id = await insertVm(db, {
        poolId: poolA,
        ownerId: alice,
        vcpus: 2,
        memoryMiB: 1024,
        nics: 2,
        volumesGiB: [10, 5.5],
      });
    },
    poolA,
    { vcpus: 0, memoryMiB: 0, storageGiB: 15.5, nics: 0, vms: 0, users: [alice] },
  );
  await step(() => setVm({ state: 'running' }), poolA, {
    vcpus: 2,
    memoryMiB: 1024,
    storageGiB: 15.5,
    nics: 2,
    vms: 1,
    users: [alice],
  });
  const nic = await db
    .insertInto('vm_nics')
    .values({ vm_id: id, mac: '52:54:00:aa:bb:cc' })
    .returning('id')
    .executeTakeFirstOrThrow();
  await step(async () => undefined, poolA, {
    vcpus: 2,
    memoryMiB: 1024,
    storageGiB: 15.5,
    nics: 3,
    vms: 1,
    users: [alice],
  });
  await step(() => db.deleteFrom('vm_nics').where('id', '=', nic.id).execute(), poolA, {
    vcpus: 2,
    memoryMiB: 1024,
    storageGiB: 15.5,
    nics: 2,
    vms: 1,
    users: [alice],
  });
  await step(() => setVm({ vcpus: 4, memory_mib: 2048 }), poolA, {
    vcpus: 4,
    memoryMiB: 2048,
    storageGiB: 15.5,
    nics: 2,
    vms: 1,
    users: [alice],
  });
  const volumes = await db
    .selectFrom('volumes')
    .select(['id', 'size_gib'])
    .where('vm_id', '=', id)
    .orderBy('id')
    .execute();
  await step(
    () => db.updateTable('volumes').set({ vm_id: null }).where('id', '=', volumes[1].id).execute(),
    poolA,
    {
      vcpus: 4,
      memoryMiB: 2048,
      storageGiB: 10,
      nics: 2,
      vms: 1,
      users: [alice],
    },
  );
  await step(
    () => db.updateTable('volumes').set({ size_gib: 20 }).where('id', '=', volumes[0].id).execute(),
    poolA,
    {
      vcpus: 4,
      memoryMiB: 2048,
      storageGiB: 20,
      nics: 2,
      vms: 1,
      users: [alice],
    },
  );
  await step(
    () =>
      db.updateTable('volumes').set({ vm_id: id, size_gib: 1.25 }).where('id', '=', volumes[1].id).execute(),
    poolA,
    {
      vcpus: 4,
      memoryMiB: 2048,
      storageGiB: 21.25,
      nics: 2,
      vms: 1,
      users: [alice],
    },
  );
  // Moved to another pool, then given to another owner: the usage moves along; the hardware pool's stays.
  await step(() => setVm({ pool_id: poolB }), poolA, {
    vcpus: 0,
    memoryMiB: 0,
    storageGiB: 0,
    nics: 0,
    vms: 0,
    users: [],
  });
  await step(() => setVm({ owner_id: bob }), poolB, {
    vcpus: 4,
    memoryMiB: 2048,
    storageGiB: 21.25,
    nics: 2,
    vms: 1,
    users: [bob],
  });
  await step(() => setVm({ state: 'unknown' }), hw, {
    vcpus: 4,
    memoryMiB: 2048,
    storageGiB: 21.25,
    nics: 2,
    vms: 1,
    users: [bob],
  });
  await step(() => setVm({ state: 'shutoff' }), hw, {
    vcpus: 0,
    memoryMiB: 0,
    storageGiB: 21.25,
    nics: 0,
    vms: 0,
    users: [bob],
  });
  await step(() => db.deleteFrom('vms').where('id', '=', id).execute(), hw, {
    vcpus: 0,
    memoryMiB: 0,
    storageGiB: 0,
    nics: 0,
    vms: 0,
    users: [],
  });
});
