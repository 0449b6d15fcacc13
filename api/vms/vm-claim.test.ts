import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { insertVm } from '../../lib/testing/fleet.js';
import type { DatabaseHandle } from '../../schema/db.js';
import {
  explainCandidate,
  type StoredDecision,
  storedDecision,
  takenMeanwhileFormats,
} from '../placement/placement.js';
import { BUSY_REASON, decide, hostClaims, unclaimedDecision } from '../placement/placement.service.js';
import { createClaimRack } from './testing/claim-rack.js';
import { batchedVmActionContext, claimVmAction } from './vm-claim.repository.js';
import { ACTIVE_VM_STATES } from './vm-states.js';

/**
 * The claim's second look (herd_vm_claim): what a concurrent claim changed between placement's decision and the
 * claim — a host locked by another claim, a host whose room was taken — and how the kept decision tells it.
 */
let database: DatabaseHandle;
let owner: number;
let vmPool: number;
let hosts: number[];

beforeAll(async () => {
  // Decisions here rank hosts from allocations read with each context (vm-placement-cache.test.ts keeps them).
  const r = await createClaimRack({ hostCacheMs: 0, hosts: 2, memoryMiB: 8192 });
  ({ database, vmPool, hosts } = r);
  owner = r.owner.id;
});
afterAll(() => database.close());

/** A stopped 2-vCPU VM and what placement decides for it now (h1 first: both empty, ties go to the lower id). */
async function decideStart() {
  const id = await insertVm(database.db, { poolId: vmPool, ownerId: owner, vcpus: 2, memoryMiB: 1024 });
  const vm = (await batchedVmActionContext(database.db, id, owner, true))!;
  const size = { vcpus: vm.vcpus, memoryMiB: vm.memory_mib };
  const decision = decide(vm.hosts!, { vm, request: size });
  const claim = () =>
    claimVmAction(database.db, {
      vmId: vm.id,
      from: vm.state,
      to: 'starting',
      size,
      quota: { poolId: vm.pool_id, userId: vm.owner_id, nics: vm.nic_count, active: ACTIVE_VM_STATES },
      migrate: false,
      task: { userId: owner, action: 'start', poolId: vm.pool_id, args: {} },
      hosts: hostClaims(decision),
      takenMeanwhile: takenMeanwhileFormats(size),
      busyReason: BUSY_REASON,
      decision: storedDecision(decision, { action: 'start', decidedAt: new Date() }),
    });
  return { id, vm, decision, claim };
}

/** Another VM running on `host`, holding `vcpus` of its room. */
function occupy(host: number, vcpus: number) {
  return insertVm(database.db, {
    poolId: vmPool,
    ownerId: owner,
    vcpus,
    memoryMiB: 512,
    state: 'running',
    hostId: host,
  });
}

async function kept(vmId: number): Promise<StoredDecision> {
  const row = await database.db
    .selectFrom('vms')
    .select('placement')
    .where('id', '=', vmId)
    .executeTakeFirstOrThrow();
  return row.placement as StoredDecision;
}

/** Holds a host's allocation row locked, as a concurrent claim would, until `release()`. */
async function holdHost(host: number) {
  const client = await database.pool.connect();
  await client.query('BEGIN');
  await client.query('SELECT 1 FROM host_allocations WHERE host_id = $1 FOR UPDATE', [host]);
  return async () => {
    await client.query('ROLLBACK');
    client.release();
  };
}

describe('the claim after the decision', () => {
  test('a host whose room was taken meanwhile is passed over, with the reason placement would give now', async () => {
    const { id, decision, claim } = await decideStart();
    expect(decision.chosenHostId).toBe(hosts[0]);
    const other = await occupy(hosts[0], 3);
    const outcome = await claim();
    expect(outcome).toMatchObject({ status: 'claimed', hostId: hosts[1] });
    const h1Now = (await batchedVmActionContext(database.db, id, owner, true))!.hosts!.find(
      (h) => h.id === hosts[0],
    )!;
    const now = explainCandidate(h1Now, decision.request, { policy: decision.policy });
    const stored = await kept(id);
    expect(stored.chosenHostId).toBe(hosts[1]);
    expect(stored.candidates.find(([hostId]) => hostId === hosts[0])).toEqual([
      hosts[0],
      null,
      null,
      now.reasons.map((r) => `taken meanwhile: ${r}`),
    ]);
    expect(now.reasons).toEqual([
      'no room for vCPUs: 3 allocated + 2 requested > 4 capacity ((4 − 0 reserved) × 1)',
    ]);
    await database.db.deleteFrom('vms').where('id', 'in', [id, other]).execute();
  });

  test('a host another claim holds is passed over as busy; the next one is claimed', async () => {
    const { id, claim } = await decideStart();
    const release = await holdHost(hosts[0]);
    try {
      expect(await claim()).toMatchObject({ status: 'claimed', hostId: hosts[1] });
    } finally {
      await release();
    }
    const stored = await kept(id);
    expect(stored.candidates[0]).toEqual([hosts[0], expect.any(Number), 1, [BUSY_REASON]]);
    expect(stored.chosenHostId).toBe(hosts[1]);
    await database.db.deleteFrom('vms').where('id', '=', id).execute();
  });

  test('when every other host is full, the claim waits for the busy one', async () => {
    const { id, claim } = await decideStart();
    const other = await occupy(hosts[1], 4);
    const release = await holdHost(hosts[0]);
    const claimed = claim();
    setTimeout(() => void release(), 200);
    expect(await claimed).toMatchObject({ status: 'claimed', hostId: hosts[0] });
    const stored = await kept(id);
    expect(stored.candidates[0]).toEqual([hosts[0], expect.any(Number), 1, []]);
    expect(stored.candidates[1][3][0]).toMatch(/^taken meanwhile: no room for vCPUs: 4 allocated/);
    await database.db.deleteFrom('vms').where('id', 'in', [id, other]).execute();
  });

  test('with no host left nothing changes, and the refusal says why per host', async () => {
    const { id, decision, claim } = await decideStart();
    const others = [await occupy(hosts[0], 3), await occupy(hosts[1], 3)];
    const outcome = await claim();
    expect(outcome.status).toBe('no_host');
    const failed = unclaimedDecision(decision, (outcome as { decision: StoredDecision }).decision);
    expect(failed.chosenHostId).toBeNull();
    expect(failed.message).toBe(
      'every eligible host was taken by concurrent claims: ' +
        'h1: taken meanwhile: no room for vCPUs: 3 allocated + 2 requested > 4 capacity ((4 − 0 reserved) × 1) | ' +
        'h2: taken meanwhile: no room for vCPUs: 3 allocated + 2 requested > 4 capacity ((4 − 0 reserved) × 1)',
    );
    const vm = await database.db
      .selectFrom('vms')
      .select(['state', 'host_id'])
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    expect(vm).toEqual({ state: 'shutoff', host_id: null });
    expect(await database.db.selectFrom('tasks').select('id').where('target_id', '=', id).execute()).toEqual(
      [],
    );
    await database.db
      .deleteFrom('vms')
      .where('id', 'in', [id, ...others])
      .execute();
  });
});
