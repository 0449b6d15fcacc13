import { afterAll, beforeAll, expect, inject, test } from 'vitest';
import { insertHost, insertVm } from '../../lib/testing/fleet.js';
import { createPool } from '../../lib/testing/users.js';
import { connect, type DatabaseHandle } from '../../schema/db.js';
import { allocationDrift } from '../placement/placement.repository.js';
import { createClaimRack } from './testing/claim-rack.js';
import { requestVmAction } from './vm-actions.service.js';
import { batchedVmActionContext, configureVmClaims } from './vm-claim.repository.js';

/**
 * Host allocations kept per process between decisions (VmClaimBatches, migration 2026-11-24T00): reused while
 * younger than the max age, this process's claims added as made; what another process did shows once they are
 * read again; an inventory change is seen at once (a host added, moved, removed or changed, its pool's ratios), and
 * only that; no room on kept allocations is checked on fresh ones.
 */
let database: DatabaseHandle & { name: string };
let owner: { id: number; username: string; isSuperAdmin: boolean };
let rack: number;
let vmPool: number;
let hosts: number[];

beforeAll(async () => {
  const r = await createClaimRack({ hostCacheMs: 60_000, hosts: 3, memoryMiB: 65536 });
  ({ database, rack, vmPool, hosts } = r);
  owner = { id: r.owner.id, username: 'owner', isSuperAdmin: false };
});
afterAll(() => database.close());

const vm = (vcpus: number) =>
  insertVm(database.db, { poolId: vmPool, ownerId: owner.id, vcpus, memoryMiB: 1024 });

async function context(db: DatabaseHandle, vmId: number) {
  const ctx = (await batchedVmActionContext(db.db, vmId, owner.id, true))!;
  const allocated = new Map(ctx.hosts!.map((h) => [h.id, h.allocatedVcpus]));
  return { cached: ctx.hostsCached, allocated, hosts: ctx.hosts! };
}

/** Another process's VM running on `host`: its allocation changes behind this process's back. */
function placedElsewhere(host: number, vcpus: number): Promise<number> {
  return insertVm(database.db, {
    poolId: vmPool,
    ownerId: owner.id,
    vcpus,
    memoryMiB: 1024,
    state: 'running',
    hostId: host,
  });
}

test('within the max age a context reuses what it read, with the claims this process made added', async () => {
  const first = await vm(2);
  expect((await context(database, first)).cached).toBe(false);
  await requestVmAction({ db: database.db }, owner, first, { action: 'start' });
  const { host_id: chosen } = await database.db
    .selectFrom('vms')
    .select('host_id')
    .where('id', '=', first)
    .executeTakeFirstOrThrow();

  const second = await vm(1);
  const kept = await context(database, second);
  expect(kept.cached).toBe(true);
  expect(kept.allocated.get(chosen!)).toBe(2);

  const elsewhere = hosts.find((h) => h !== chosen)!;
  await placedElsewhere(elsewhere, 3);
  const stale = await context(database, second);
  expect(stale.cached).toBe(true);
  expect(stale.allocated.get(elsewhere)).toBe(0);
});

test('an inventory change is seen at once, with the allocations as they are now', async () => {
  const id = await vm(1);
  await database.db.updateTable('hosts').set({ enabled: false }).where('id', '=', hosts[2]).execute();
  const now = await context(database, id);
  expect(now.cached).toBe(false);
  expect(now.hosts.find((h) => h.id === hosts[2])?.enabled).toBe(false);
  const { rows } = await database.pool.query<{ host_id: number; vcpus: string }>(
    'SELECT host_id, vcpus FROM host_allocations',
  );
  for (const row of rows) expect(now.allocated.get(row.host_id)).toBe(Number(row.vcpus));
  await database.db.updateTable('hosts').set({ enabled: true }).where('id', '=', hosts[2]).execute();
  expect((await context(database, id)).hosts.find((h) => h.id === hosts[2])?.enabled).toBe(true);
});

test('a host added, moved in or out, or removed, and new ratios on its hardware pool, are seen at once', async () => {
  const id = await vm(1);
  await context(database, id);
  const seenAfter = async (change: () => Promise<unknown>) => {
    expect((await context(database, id)).cached).toBe(true);
    await change();
    const now = await context(database, id);
    expect(now.cached).toBe(false);
    return now;
  };
  const ids = (now: { hosts: { id: number }[] }) => now.hosts.map((h) => h.id);
  const other = await createPool(database.db, { name: 'other rack' });
  const late = await insertHost(database.db, { poolId: other, cpus: 8, memoryMiB: 1024, hostname: 'late' });

  expect(
    ids(
      await seenAfter(() =>
        database.db.updateTable('hosts').set({ pool_id: rack }).where('id', '=', late).execute(),
      ),
    ),
  ).toContain(late);
  const ratio = await seenAfter(() =>
    database.db.updateTable('pools').set({ cpu_allocation_ratio: 2 }).where('id', '=', rack).execute(),
  );
  expect(ratio.hosts.every((h) => h.poolCpuAllocationRatio === 2)).toBe(true);
  expect(
    ids(
      await seenAfter(() =>
        database.db.updateTable('hosts').set({ pool_id: other }).where('id', '=', late).execute(),
      ),
    ),
  ).not.toContain(late);
  const added = await seenAfter(() =>
    insertHost(database.db, { poolId: rack, cpus: 8, memoryMiB: 1024, hostname: 'later' }),
  );
  const later = ids(added).find((h) => !hosts.includes(h))!;
  expect(added.hosts.find((h) => h.id === later)).toMatchObject({ hostname: 'later', cpus: 8 });
  expect(
    ids(await seenAfter(() => database.db.deleteFrom('hosts').where('id', '=', later).execute())),
  ).toEqual(hosts);
  // Neither a host's heartbeat nor another hardware pool's hosts make it read them again.
  await database.db
    .updateTable('hosts')
    .set({ last_seen_at: new Date() })
    .where('id', '=', hosts[0])
    .execute();
  await database.db.deleteFrom('hosts').where('id', '=', late).execute();
  expect((await context(database, id)).cached).toBe(true);
  await database.db.updateTable('pools').set({ cpu_allocation_ratio: null }).where('id', '=', rack).execute();
});

test('another process reads them again once they are older than its max age', async () => {
  const other = connect(inject('pgAdminUrl').replace(/\/postgres$/, `/${database.name}`), { max: 2 });
  try {
    configureVmClaims(other.db, { hostCacheMs: 100 });
    const id = await vm(1);
    const first = await context(other, id);
    expect(first.cached).toBe(false);
    const before = first.allocated.get(hosts[0])!;
    const added = await placedElsewhere(hosts[0], 1);
    // Compared with the fresh read, not with a kept one in between: on a loaded machine that may itself expire.
    await new Promise((resolve) => setTimeout(resolve, 150));
    const after = await context(other, id);
    expect(after.cached).toBe(false);
    expect(after.allocated.get(hosts[0])).toBe(before + 1);
    await database.db.deleteFrom('vms').where('id', '=', added).execute();
  } finally {
    await other.close();
  }
});

test('when no host has room by the allocations kept, placement decides again on fresh ones', async () => {
  await database.db.deleteFrom('vms').execute();
  const fillers = await Promise.all(hosts.map((h) => placedElsewhere(h, 4)));
  // An inventory change makes this process read the full hosts; then they empty behind its back.
  await database.db.updateTable('hosts').set({ reserved_vcpus: 0 }).where('id', '=', hosts[0]).execute();
  await database.db.updateTable('hosts').set({ reserved_vcpus: 1 }).where('id', '=', hosts[0]).execute();
  const id = await vm(2);
  const full = await context(database, id);
  expect([...full.allocated.values()]).toEqual([4, 4, 4]);
  await database.db.deleteFrom('vms').where('id', 'in', fillers).execute();
  expect((await context(database, id)).cached).toBe(true);

  const { taskId } = await requestVmAction({ db: database.db }, owner, id, { action: 'start' });
  expect(taskId).toBeGreaterThan(0);
  const row = await database.db
    .selectFrom('vms')
    .select(['state', 'host_id'])
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
  expect(row.state).toBe('starting');
  expect(hosts).toContain(row.host_id);
  expect(await allocationDrift(database.db)).toEqual([]);
});
