import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, expect, test } from 'vitest';
import { insertHost, insertVm } from '../../lib/testing/fleet.js';
import { createPool } from '../../lib/testing/users.js';
import { waitFor } from '../../lib/testing/wait.js';
import type { DatabaseHandle } from '../../schema/db.js';
import { type StoredDecision, storedDecision, takenMeanwhileFormats } from '../placement/placement.js';
import { allocationDrift } from '../placement/placement.repository.js';
import { BUSY_REASON, decide, HOSTS_PER_CLAIM, hostClaims } from '../placement/placement.service.js';
import { createClaimRack } from './testing/claim-rack.js';
import { requestVmAction } from './vm-actions.service.js';
import {
  batchedClaimVmAction,
  batchedVmActionContext,
  heldPlacementState,
  type VmClaimRequest,
} from './vm-claim.repository.js';
import { ACTIVE_VM_STATES } from './vm-states.js';

/**
 * Claims and contexts in batches (migration T80, VmClaimBatches): a batch is one transaction whose claims see each
 * other's effects and still answer each its own outcome; the tasks it claims get their jobs; a batch that
 * fails as a whole is claimed again one by one; two batches of claims are in flight; host records are kept between
 * batches until their inventory changes, and dropped once their host is gone.
 * (Allocations are read with every context here: vm-placement-cache.test.ts keeps them.)
 */
let database: DatabaseHandle;
let owner: { id: number; token: string };
let rack: number;
let vmPool: number;
let hosts: number[];

beforeAll(async () => {
  // Decisions here rank hosts from allocations read with each context (vm-placement-cache.test.ts keeps them).
  ({ database, owner, rack, vmPool, hosts } = await createClaimRack({
    hostCacheMs: 0,
    hosts: HOSTS_PER_CLAIM + 2,
    memoryMiB: 65536,
  }));
  await database.db
    .insertInto('quotas')
    .values({ pool_id: vmPool, user_id: null, vcpus: 1000, memory_mib: 16 * 1024 })
    .execute();
});
afterAll(() => database.close());
beforeEach(async () => {
  await database.db.deleteFrom('vms').execute();
});

/** A claim to start a stopped VM as placement would make it now (hosts ranked from a fresh context). */
async function startClaim(vmId: number): Promise<VmClaimRequest> {
  const vm = (await batchedVmActionContext(database.db, vmId, owner.id, true))!;
  const size = { vcpus: vm.vcpus, memoryMiB: vm.memory_mib };
  const decision = decide(vm.hosts!, { vm, request: size });
  return {
    vmId: vm.id,
    from: vm.state,
    to: 'starting',
    size,
    quota: { poolId: vm.pool_id, userId: vm.owner_id, nics: vm.nic_count, active: ACTIVE_VM_STATES },
    migrate: false,
    task: { userId: owner.id, action: 'start', poolId: vm.pool_id, args: {} },
    hosts: hostClaims(decision),
    takenMeanwhile: takenMeanwhileFormats(size),
    busyReason: BUSY_REASON,
    decision: storedDecision(decision, { action: 'start', decidedAt: new Date() }),
  };
}

const vm = (vcpus: number, memoryMiB = 1024, state = 'shutoff') =>
  insertVm(database.db, { poolId: vmPool, ownerId: owner.id, vcpus, memoryMiB, state });

async function jobKeys(): Promise<string[]> {
  const { rows } = await sql<{ key: string; max_attempts: number }>`
    SELECT key, max_attempts FROM graphile_worker._private_jobs ORDER BY key`.execute(database.db);
  expect(rows.every((r) => r.max_attempts === 1)).toBe(true);
  return rows.map((r) => r.key);
}

test('one batch: later claims see the room earlier ones took; each gets its own outcome; claimed tasks get their jobs', async () => {
  const jobsBefore = await jobKeys();
  // Three 2-vCPU VMs all ranked h1 first (empty hosts tie; the lower id wins): h1 takes two, the third goes on.
  const small = [await vm(2), await vm(2), await vm(2)];
  const overQuota = await vm(1, 17 * 1024);
  const running = await vm(1, 1024, 'running');
  const claims = [...(await Promise.all(small.map(startClaim))), await startClaim(overQuota)];
  claims.push({ ...(await startClaim(small[0])), vmId: running });
  // Submitted in one turn of the event loop: one batch, claimed in order (one pool, ascending VM ids).
  const outcomes = await Promise.all(claims.map((c) => batchedClaimVmAction(database.db, c)));

  expect(outcomes.map((o) => o.status)).toEqual(['claimed', 'claimed', 'claimed', 'quota', 'invalid_state']);
  expect(outcomes.slice(0, 3).map((o) => (o as { hostId: number }).hostId)).toEqual([
    hosts[0],
    hosts[0],
    hosts[1],
  ]);
  expect(outcomes[3]).toMatchObject({ refusal: { resource: 'memoryMiB', limit: 16 * 1024 } });
  expect(outcomes[4]).toEqual({ status: 'invalid_state', state: 'running' });
  const third = await database.db
    .selectFrom('vms')
    .select('placement')
    .where('id', '=', small[2])
    .executeTakeFirstOrThrow();
  expect((third.placement as StoredDecision).candidates[0][3][0]).toMatch(
    /^taken meanwhile: no room for vCPUs: 4 allocated \+ 2 requested > 4 capacity/,
  );
  // The jobs follow the commit (task-queue-jobs.ts).
  const taskIds = outcomes.slice(0, 3).map((o) => (o as { taskId: number }).taskId);
  await expect.poll(jobKeys).toEqual([...jobsBefore, ...taskIds.map((id) => `task:${id}`)].sort());
  const states = await database.db
    .selectFrom('vms')
    .select(['id', 'state'])
    .where('id', 'in', [overQuota, running])
    .orderBy('id')
    .execute();
  expect(states.map((s) => s.state)).toEqual(['shutoff', 'running']);
  expect(await allocationDrift(database.db)).toEqual([]);
});

test('a batch that fails as a whole is claimed again one by one: only the bad claim fails', async () => {
  const good = [await vm(1), await vm(1)];
  const claims = await Promise.all(good.map(startClaim));
  // Submitted in one turn of the event loop: they go as one batch, which the malformed claim makes fail.
  const answers = await Promise.allSettled([
    batchedClaimVmAction(database.db, claims[0]),
    batchedClaimVmAction(database.db, { ...claims[1], vmId: 'not a number' as unknown as number }),
    batchedClaimVmAction(database.db, claims[1]),
  ]);
  expect(answers.map((a) => a.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
  expect(answers.map((a) => (a.status === 'fulfilled' ? a.value.status : undefined))).toEqual([
    'claimed',
    undefined,
    'claimed',
  ]);
  expect(await allocationDrift(database.db)).toEqual([]);
});

test('two batches of claims are in flight: one waiting on a lock does not hold up the next', async () => {
  const otherPool = await createPool(database.db, { name: 'other vms', kind: 'vm', parentId: rack });
  const waiting = await vm(1);
  const other = await insertVm(database.db, {
    poolId: otherPool,
    ownerId: owner.id,
    vcpus: 1,
    memoryMiB: 1024,
  });
  const claims = [await startClaim(waiting), await startClaim(other)];
  const client = await database.pool.connect();
  let first: Promise<unknown> | undefined;
  let firstAnswered = false;
  try {
    // Another transaction holds the first VM's pool, as a concurrent quota claim would.
    await client.query('BEGIN');
    await client.query('SELECT 1 FROM pools WHERE id = $1 FOR UPDATE', [vmPool]);
    first = batchedClaimVmAction(database.db, claims[0]).finally(() => {
      firstAnswered = true;
    });
    const lockWaits = async () =>
      (
        await sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock'`.execute(database.db)
      ).rows[0].n;
    await expect.poll(lockWaits).toBe(1);
    const second = await Promise.race([
      batchedClaimVmAction(database.db, claims[1]),
      new Promise((resolve) => setTimeout(resolve, 3000, 'queued behind the first')),
    ]);
    expect(second).toMatchObject({ status: 'claimed' });
    expect(firstAnswered).toBe(false);
  } finally {
    await client.query('COMMIT');
    client.release();
  }
  expect(await first).toMatchObject({ status: 'claimed' });
  expect(await allocationDrift(database.db)).toEqual([]);
});

test('host records are read again when their inventory changes; allocations with every batch', async () => {
  const id = await vm(1);
  const hostOf = async (hostId: number) =>
    (await batchedVmActionContext(database.db, id, owner.id, true))!.hosts!.find((h) => h.id === hostId);
  expect(await hostOf(hosts[2])).toMatchObject({
    enabled: true,
    allocatedVcpus: 0,
    poolCpuAllocationRatio: null,
  });

  await database.db.updateTable('hosts').set({ enabled: false }).where('id', '=', hosts[2]).execute();
  const other = await vm(3, 1024, 'running');
  await database.db.updateTable('vms').set({ host_id: hosts[2] }).where('id', '=', other).execute();
  expect(await hostOf(hosts[2])).toMatchObject({ enabled: false, allocatedVcpus: 3 });

  await database.db.updateTable('pools').set({ cpu_allocation_ratio: 2 }).where('id', '=', rack).execute();
  expect(await hostOf(hosts[2])).toMatchObject({ poolCpuAllocationRatio: 2 });

  const added = await insertHost(database.db, { poolId: rack, cpus: 8, memoryMiB: 1024, hostname: 'late' });
  expect(await hostOf(added)).toMatchObject({ hostname: 'late', cpus: 8 });
  expect(heldPlacementState(database.db)).toEqual({ hostRecords: hosts.length + 1, hostSets: 1 });
  await database.db.deleteFrom('hosts').where('id', '=', added).execute();
  expect(await hostOf(added)).toBeUndefined();
  // The removed host's record is not kept either.
  expect(heldPlacementState(database.db)).toEqual({ hostRecords: hosts.length, hostSets: 1 });

  await database.db.updateTable('hosts').set({ enabled: true }).where('id', '=', hosts[2]).execute();
  await database.db.updateTable('pools').set({ cpu_allocation_ratio: null }).where('id', '=', rack).execute();
});

test(`the claim takes the best ${HOSTS_PER_CLAIM} hosts first, then the next ones when none of those had room`, async () => {
  const id = await vm(2);
  const best = hosts.slice(0, HOSTS_PER_CLAIM);
  // A concurrent transaction holds the best hosts and fills them up before it commits.
  const client = await database.pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT 1 FROM host_allocations WHERE host_id = ANY($1) FOR UPDATE', [best]);
    const answer = requestVmAction(
      { db: database.db },
      { id: owner.id, username: 'owner', isSuperAdmin: false },
      id,
      { action: 'start' },
    );
    // Until the claim waits on those rows: a fixed pause may be too short on a loaded machine.
    await waitFor(
      async () => {
        const { rows } = await database.pool.query(
          "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        );
        return rows.length > 0;
      },
      10_000,
      20,
    );
    await client.query('UPDATE host_allocations SET vcpus = 4 WHERE host_id = ANY($1)', [best]);
    await client.query('COMMIT');
    await answer;
  } finally {
    client.release();
  }
  const row = await database.db
    .selectFrom('vms')
    .select(['state', 'host_id', 'placement'])
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
  expect(row).toMatchObject({ state: 'starting', host_id: hosts[HOSTS_PER_CLAIM] });
  const stored = row.placement as StoredDecision;
  expect(stored.chosenHostId).toBe(hosts[HOSTS_PER_CLAIM]);
  for (const [hostId, , , reasons] of stored.candidates.slice(0, HOSTS_PER_CLAIM)) {
    expect(best).toContain(hostId);
    expect(reasons[0]).toMatch(/^taken meanwhile: no room for vCPUs: 4 allocated/);
  }
  await database.db.updateTable('host_allocations').set({ vcpus: 0 }).where('host_id', 'in', best).execute();
});
