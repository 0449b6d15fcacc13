import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestDatabase } from '../../lib/testing/db.js';
import { insertHost, insertVm } from '../../lib/testing/fleet.js';
import { createPool, createUserWithToken } from '../../lib/testing/users.js';
import type { DatabaseHandle } from '../../schema/db.js';
import { upsertQuota } from './quota.repository.js';
import {
  assertFitsLargestHost,
  type ClaimRequest,
  claim,
  QuotaExceededError,
  recount,
  usage,
} from './quota.service.js';

let h: DatabaseHandle;
let alice: number;
let bob: number;
let carol: number;

beforeAll(async () => {
  h = await createTestDatabase();
  alice = (await createUserWithToken(h.db, { username: 'alice' })).id;
  bob = (await createUserWithToken(h.db, { username: 'bob' })).id;
  carol = (await createUserWithToken(h.db, { username: 'carol' })).id;
});
afterAll(() => h.close());

type Limits = Partial<Record<'vcpus' | 'memory_mib' | 'storage_gib' | 'nics' | 'vms', number>>;
const unlimited = { vcpus: null, memory_mib: null, storage_gib: null, nics: null, vms: null };

async function setQuota(poolId: number, userId: number | null, limits: Limits) {
  await upsertQuota(h.db, { pool_id: poolId, user_id: userId, ...unlimited, ...limits });
}

/** A claim in its own transaction; resolves to the refusal (or null when granted). */
async function tryClaim(request: ClaimRequest): Promise<QuotaExceededError | null> {
  try {
    await h.db.transaction().execute((trx) => claim(trx, request));
    return null;
  } catch (err) {
    if (err instanceof QuotaExceededError) return err;
    throw err;
  }
}

async function tree() {
  const hw = await createPool(h.db, { name: `hw-${Math.random()}` });
  const vm1 = await createPool(h.db, { name: 'v1', kind: 'vm', parentId: hw });
  const vm2 = await createPool(h.db, { name: 'v2', kind: 'vm', parentId: hw });
  return { hw, vm1, vm2 };
}

describe('what counts', () => {
  test('storage counts for VMs in every state; vCPUs, memory, NICs and VMs only for active ones', async () => {
    const { vm1 } = await tree();
    await setQuota(vm1, alice, { storage_gib: 100, vcpus: 4, memory_mib: 4096, nics: 2, vms: 2 });
    await insertVm(h.db, {
      poolId: vm1,
      ownerId: alice,
      state: 'shutoff',
      vcpus: 4,
      memoryMiB: 4096,
      nics: 2,
      volumesGiB: [60, 20],
    });
    await insertVm(h.db, { poolId: vm1, ownerId: alice, state: 'saved', vcpus: 4, memoryMiB: 4096, nics: 2 });

    const storage = await tryClaim({ poolId: vm1, userId: alice, delta: { storageGiB: 30 } });
    expect(storage?.details).toMatchObject({
      resource: 'storage',
      limit: 100,
      used: 80,
      requested: 30,
      scope: 'user',
    });
    expect(await tryClaim({ poolId: vm1, userId: alice, delta: { storageGiB: 20 } })).toBeNull();
    // Nothing active: the whole compute quota is free.
    expect(
      await tryClaim({ poolId: vm1, userId: alice, delta: { vcpus: 4, memoryMiB: 4096, nics: 2, vms: 2 } }),
    ).toBeNull();
  });

  test.each(['starting', 'running', 'paused', 'migrating', 'restoring', 'unknown'])(
    'a VM %s holds its vCPUs, memory, NICs and VM slot',
    async (state) => {
      const { vm1 } = await tree();
      await setQuota(vm1, alice, { vcpus: 3, memory_mib: 3000, nics: 2, vms: 2 });
      await insertVm(h.db, { poolId: vm1, ownerId: alice, state, vcpus: 2, memoryMiB: 2000, nics: 1 });
      expect((await tryClaim({ poolId: vm1, userId: alice, delta: { vcpus: 2 } }))?.details).toMatchObject({
        resource: 'vcpus',
        used: 2,
        limit: 3,
      });
      expect(
        (await tryClaim({ poolId: vm1, userId: alice, delta: { memoryMiB: 1001 } }))?.details.resource,
      ).toBe('memory');
      expect((await tryClaim({ poolId: vm1, userId: alice, delta: { nics: 2 } }))?.details.resource).toBe(
        'nics',
      );
      expect((await tryClaim({ poolId: vm1, userId: alice, delta: { vms: 2 } }))?.details.resource).toBe(
        'vms',
      );
      expect(
        await tryClaim({ poolId: vm1, userId: alice, delta: { vcpus: 1, memoryMiB: 1000, nics: 1, vms: 1 } }),
      ).toBeNull();
    },
  );

  test('a field left out is unlimited; releasing (negative deltas) is always allowed', async () => {
    const { vm1 } = await tree();
    await setQuota(vm1, alice, { vcpus: 1 });
    await insertVm(h.db, { poolId: vm1, ownerId: alice, state: 'running', vcpus: 1, memoryMiB: 1 << 20 });
    expect(
      await tryClaim({ poolId: vm1, userId: alice, delta: { memoryMiB: 1 << 30, vms: 1000 } }),
    ).toBeNull();
    expect(await tryClaim({ poolId: vm1, userId: alice, delta: { vcpus: -1 } })).toBeNull();
    expect((await tryClaim({ poolId: vm1, userId: alice, delta: { vcpus: 1 } }))?.details.resource).toBe(
      'vcpus',
    );
  });
});

describe('where quotas come from', () => {
  test('no quota anywhere is unlimited', async () => {
    const { vm1 } = await tree();
    expect(await tryClaim({ poolId: vm1, userId: alice, delta: { vcpus: 10_000, vms: 10_000 } })).toBeNull();
  });

  test("a pool without its own quota takes its nearest ancestor's, counted over that ancestor's subtree", async () => {
    const { hw, vm1, vm2 } = await tree();
    await setQuota(hw, alice, { vms: 1 });
    await insertVm(h.db, { poolId: vm1, ownerId: alice, state: 'running' });
    const refusal = await tryClaim({ poolId: vm2, userId: alice, delta: { vms: 1 } });
    expect(refusal?.details).toMatchObject({
      resource: 'vms',
      limit: 1,
      used: 1,
      scope: 'user',
      poolId: hw,
      userId: alice,
    });
    // Bob has no quota of his own there.
    expect(await tryClaim({ poolId: vm2, userId: bob, delta: { vms: 5 } })).toBeNull();
  });

  test("a pool's own quota narrows its ancestor's but cannot widen it", async () => {
    const { hw, vm1, vm2 } = await tree();
    await setQuota(hw, alice, { vcpus: 4 });
    await setQuota(vm1, alice, { vcpus: 100 });
    await setQuota(vm2, alice, { vcpus: 1 });
    expect((await tryClaim({ poolId: vm1, userId: alice, delta: { vcpus: 5 } }))?.details.poolId).toBe(hw);
    expect((await tryClaim({ poolId: vm2, userId: alice, delta: { vcpus: 2 } }))?.details.poolId).toBe(vm2);
    expect(await tryClaim({ poolId: vm1, userId: alice, delta: { vcpus: 4 } })).toBeNull();
  });

  test('the pool total counts every user; per-user quotas each their own', async () => {
    const { vm1 } = await tree();
    await setQuota(vm1, null, { vms: 2 });
    await setQuota(vm1, alice, { vms: 1 });
    await insertVm(h.db, { poolId: vm1, ownerId: alice, state: 'running' });
    expect((await tryClaim({ poolId: vm1, userId: alice, delta: { vms: 1 } }))?.details).toMatchObject({
      scope: 'user',
      userId: alice,
    });
    expect(await tryClaim({ poolId: vm1, userId: bob, delta: { vms: 1 } })).toBeNull();
    await insertVm(h.db, { poolId: vm1, ownerId: bob, state: 'running' });
    const refusal = await tryClaim({ poolId: vm1, userId: carol, delta: { vms: 1 } });
    expect(refusal?.details).toMatchObject({
      scope: 'pool',
      resource: 'vms',
      limit: 2,
      used: 2,
      requested: 1,
    });
    expect(refusal?.statusCode).toBe(409);
    expect(refusal?.code).toBe('quota_exceeded');
    expect(refusal?.message).toMatch(/vms: 2 used \+ 1 requested exceeds the pool total quota of 2/);
  });
});

describe('the largest host', () => {
  test('no VM gets more vCPUs or memory than one host of its hardware pool has, whatever the quota', async () => {
    const { hw, vm1 } = await tree();
    const nested = await createPool(h.db, { name: 'nested', parentId: hw });
    await insertHost(h.db, { poolId: hw, cpus: 8, memoryMiB: 65536 });
    await insertHost(h.db, { poolId: nested, cpus: 32, memoryMiB: 8192 });
    // Another hardware pool's big host does not count.
    const elsewhere = await createPool(h.db, { name: 'elsewhere' });
    await insertHost(h.db, { poolId: elsewhere, cpus: 256, memoryMiB: 1 << 22 });

    await expect(assertFitsLargestHost(h.db, vm1, { vcpus: 8, memoryMiB: 65536 })).resolves.toBeUndefined();
    await expect(assertFitsLargestHost(h.db, vm1, { vcpus: 32, memoryMiB: 8192 })).resolves.toBeUndefined();
    await expect(assertFitsLargestHost(h.db, vm1, { vcpus: 33, memoryMiB: 1 })).rejects.toMatchObject({
      statusCode: 409,
      code: 'exceeds_host_capacity',
      details: { resource: 'vcpus', largestHost: { vcpus: 32, memoryMiB: 65536 } },
    });
    await expect(assertFitsLargestHost(h.db, vm1, { vcpus: 1, memoryMiB: 65537 })).rejects.toMatchObject({
      details: { resource: 'memory' },
    });
    // Each resource fits some host, but no single host holds both.
    await expect(assertFitsLargestHost(h.db, vm1, { vcpus: 16, memoryMiB: 16384 })).rejects.toMatchObject({
      details: { resource: 'vcpus+memory' },
    });
  });

  test('claim() checks the largest host when given the VM size, and a pool without hosts holds nothing', async () => {
    const { vm1 } = await tree();
    await expect(
      h.db.transaction().execute((trx) =>
        claim(trx, {
          poolId: vm1,
          userId: alice,
          delta: { vcpus: 1 },
          hardwarePoolMax: { vcpus: 1, memoryMiB: 512 },
        }),
      ),
    ).rejects.toMatchObject({ code: 'exceeds_host_capacity' });
  });
});

describe('usage and the reconciler', () => {
  test('usage gives used and limit per resource, per user and in total; the recount agrees', async () => {
    const { hw, vm1, vm2 } = await tree();
    await setQuota(hw, null, { vcpus: 64, storage_gib: 500 });
    await setQuota(vm1, alice, { vcpus: 4 });
    await insertVm(h.db, {
      poolId: vm1,
      ownerId: alice,
      state: 'running',
      vcpus: 2,
      memoryMiB: 1024,
      nics: 2,
      volumesGiB: [10.5],
    });
    await insertVm(h.db, {
      poolId: vm1,
      ownerId: alice,
      state: 'shutoff',
      vcpus: 8,
      memoryMiB: 8192,
      nics: 1,
      volumesGiB: [5],
    });
    await insertVm(h.db, {
      poolId: vm2,
      ownerId: bob,
      state: 'paused',
      vcpus: 1,
      memoryMiB: 256,
      volumesGiB: [1, 2],
    });

    const u1 = await usage(h.db, vm1);
    expect(u1.total).toEqual({
      limitPoolId: hw,
      vcpus: { used: 2, limit: 64 },
      memoryMiB: { used: 1024, limit: null },
      storageGiB: { used: 15.5, limit: 500 },
      nics: { used: 2, limit: null },
      vms: { used: 1, limit: null },
    });
    expect(u1.users).toEqual([
      expect.objectContaining({
        userId: alice,
        username: 'alice',
        limitPoolId: vm1,
        vcpus: { used: 2, limit: 4 },
      }),
    ]);
    const uh = await usage(h.db, hw);
    expect(uh.total.vcpus.used).toBe(3);
    expect(uh.total.storageGiB.used).toBe(18.5);
    expect(uh.users.map((u) => [u.username, u.vms.used])).toEqual([
      ['alice', 1],
      ['bob', 1],
    ]);

    const report = await recount(h.db);
    expect(report.differences).toEqual([]);
    expect(report.vms).toBeGreaterThan(3);
  });
});
