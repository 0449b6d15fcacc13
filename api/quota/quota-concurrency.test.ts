import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestDatabase } from '../../lib/testing/db.js';
import { insertVm } from '../../lib/testing/fleet.js';
import { createPool, createUserWithToken } from '../../lib/testing/users.js';
import { connect, type DatabaseHandle } from '../../schema/db.js';
import { upsertQuota } from './quota.repository.js';
import { claim, QuotaExceededError } from './quota.service.js';

// Two connection pools on one database stand for two herd API processes.
let one: DatabaseHandle;
let two: DatabaseHandle;
beforeAll(async () => {
  one = await createTestDatabase();
  two = connect(one.url, { max: 10 });
});
afterAll(async () => {
  await two.close();
  await one.close();
});

/** What a VM start does: claim, then move the VM to `starting` in the same transaction. */
async function start(db: DatabaseHandle['db'], vm: { id: number; poolId: number; ownerId: number }) {
  await db.transaction().execute(async (trx) => {
    await claim(trx, { poolId: vm.poolId, userId: vm.ownerId, delta: { vcpus: 1, memoryMiB: 512, vms: 1 } });
    const updated = await trx
      .updateTable('vms')
      .set({ state: 'starting' })
      .where('id', '=', vm.id)
      .where('state', '=', 'shutoff')
      .executeTakeFirst();
    if (updated.numUpdatedRows !== 1n) throw new Error('not startable');
  });
}

test.each([
  ['a per-user quota on the VM pool', 'user', 'vm'],
  ["the pool total of the hardware pool above (an ancestor's quota)", 'pool', 'hardware'],
] as const)('100 concurrent starts against %s that fits 10 yield exactly 10', async (_name, scope, where) => {
  const { id: owner } = await createUserWithToken(one.db, { username: `owner-${scope}` });
  const hw = await createPool(one.db, { name: `hw-${scope}` });
  const poolId = await createPool(one.db, { name: 'vms', kind: 'vm', parentId: hw });
  await upsertQuota(one.db, {
    pool_id: where === 'vm' ? poolId : hw,
    user_id: scope === 'user' ? owner : null,
    vcpus: null,
    memory_mib: null,
    storage_gib: null,
    nics: null,
    vms: 10,
  });
  const vms = [];
  for (let i = 0; i < 100; i++)
    vms.push({ id: await insertVm(one.db, { poolId, ownerId: owner }), poolId, ownerId: owner });

  const started = Date.now();
  const results = await Promise.allSettled(vms.map((vm, i) => start((i % 2 ? two : one).db, vm)));
  const elapsed = Date.now() - started;

  const granted = results.filter((r) => r.status === 'fulfilled').length;
  const refusals = results
    .filter((r) => r.status === 'rejected')
    .map((r) => (r as PromiseRejectedResult).reason);
  expect(granted).toBe(10);
  expect(refusals).toHaveLength(90);
  for (const refusal of refusals) {
    expect(refusal).toBeInstanceOf(QuotaExceededError);
    expect(refusal.details).toMatchObject({ resource: 'vms', limit: 10, used: 10, requested: 1 });
  }
  const { count } = await one.db
    .selectFrom('vms')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .where('pool_id', '=', poolId)
    .where('state', '=', 'starting')
    .executeTakeFirstOrThrow();
  expect(Number(count)).toBe(10);
  console.log(`100 concurrent claims (${scope} quota on the ${where} pool) over 2 pools: ${elapsed} ms`);
});
