import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createPool, createUserWithToken, grantRole } from '../../lib/testing/users.js';
import { createFleet, type Fleet, type User } from './testing/vm-fleet.js';

/**
 * CPU hard limits through the API on libvirt's test driver: validation, a VM's effective limit (the lower of
 * its own and its VM pool's), who may set which, the audit log, and the `<cputune>` of the definition a start
 * writes. The limit enforced on a real guest is proven in cpu-limit.real.test.ts.
 */
let f: Fleet;
let owner: User;
let rack: number;
let team: number;
let host: { id: number; uri: string };

beforeAll(async () => {
  f = await createFleet();
  const db = f.t.database.db;
  rack = await createPool(db, { name: 'rack' });
  team = await createPool(db, { name: 'team', kind: 'vm', parentId: rack });
  owner = await createUserWithToken(db, { username: 'owner' });
  await grantRole(db, team, owner.id, 'user');
  host = await f.addHost(rack, { name: 'h1', cpus: 8, memoryMiB: 16384 });
  await f.worker();
});
afterAll(async () => {
  await f?.close();
});

async function createVm(name: string, extra: Record<string, unknown> = {}) {
  const res = await f.request(owner, 'POST', '/api/v1/vms', {
    name,
    poolId: team,
    vcpus: 1,
    memoryMiB: 256,
    nics: 0,
    ...extra,
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id as number;
}
const vmAnswer = async (id: number) => (await f.request(owner, 'GET', `/api/v1/vms/${id}`)).body;

describe('validation', () => {
  test.each([0, 101, -5, 1.5, '50', true, [50]])(
    'cpuLimitPercent %j is a 400 naming the field',
    async (bad) => {
      const created = await f.request(owner, 'POST', '/api/v1/vms', {
        name: 'bad',
        poolId: team,
        vcpus: 1,
        memoryMiB: 256,
        cpuLimitPercent: bad,
      });
      expect(created.status).toBe(400);
      expect(created.body.message).toContain('cpuLimitPercent');
      const pool = await f.request(f.admin, 'PATCH', `/api/v1/pools/${team}`, { cpuLimitPercent: bad });
      expect(pool.status).toBe(400);
      expect(pool.body.message).toContain('cpuLimitPercent');
    },
  );

  test('a hardware pool has no CPU limit', async () => {
    const patched = await f.request(f.admin, 'PATCH', `/api/v1/pools/${rack}`, { cpuLimitPercent: 50 });
    expect(patched.status).toBe(400);
    expect(patched.body).toMatchObject({ field: 'cpuLimitPercent' });
    const created = await f.request(f.admin, 'POST', '/api/v1/pools', {
      name: 'limited-rack',
      kind: 'hardware',
      parentId: rack,
      cpuLimitPercent: 50,
    });
    expect(created.status).toBe(400);
    // null is no limit, which a hardware pool has anyway.
    expect(
      (await f.request(f.admin, 'PATCH', `/api/v1/pools/${rack}`, { cpuLimitPercent: null })).status,
    ).toBe(200);
  });

  test('a user sets the limit of their own VM, not of the pool', async () => {
    const id = await createVm('own-limit', { cpuLimitPercent: 70 });
    expect(await vmAnswer(id)).toMatchObject({ cpuLimitPercent: 70, effectiveCpuLimitPercent: 70 });
    const patched = await f.request(owner, 'PATCH', `/api/v1/vms/${id}`, { cpuLimitPercent: 25 });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    expect(patched.body).toMatchObject({ cpuLimitPercent: 25, effectiveCpuLimitPercent: 25 });
    expect((await f.request(owner, 'PATCH', `/api/v1/pools/${team}`, { cpuLimitPercent: 90 })).status).toBe(
      403,
    );
  });
});

describe('effective limit, definition, audit', () => {
  test("the lower of the VM's and its pool's, written into the domain at start", async () => {
    const own = await createVm('capped', { cpuLimitPercent: 60 });
    const none = await createVm('uncapped');
    expect(await vmAnswer(none)).toMatchObject({ cpuLimitPercent: null, effectiveCpuLimitPercent: null });

    const pool = await f.request(f.admin, 'PATCH', `/api/v1/pools/${team}`, { cpuLimitPercent: 40 });
    expect(pool.status, JSON.stringify(pool.body)).toBe(200);
    expect(pool.body.cpuLimitPercent).toBe(40);
    // The pool's 40 is the ceiling of the VM's 60 and the default of the VM without one.
    expect(await vmAnswer(own)).toMatchObject({ cpuLimitPercent: 60, effectiveCpuLimitPercent: 40 });
    expect(await vmAnswer(none)).toMatchObject({ cpuLimitPercent: null, effectiveCpuLimitPercent: 40 });
    const listed = await f.request(owner, 'GET', `/api/v1/vms?poolId=${team}`);
    const byId = new Map(listed.body.items.map((v: { id: number }) => [v.id, v]));
    expect(byId.get(own)).toMatchObject({ effectiveCpuLimitPercent: 40 });

    const started = await f.request(owner, 'POST', `/api/v1/vms/${own}/actions`, { action: 'start' });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    expect((await f.waitTask(started.body.taskId)).state).toBe('done');
    const driver = await f.connections.get(host.uri);
    const uuid = (await vmAnswer(own)).uuid;
    const xml = await driver.domainXml(uuid);
    expect(xml).toMatch(/<cputune>\s*<period>100000<\/period>\s*<quota>40000<\/quota>\s*<\/cputune>/);

    // Running: the change is accepted (libvirt's test driver has no CPU scheduler to set live).
    const lowered = await f.request(owner, 'PATCH', `/api/v1/vms/${own}`, { cpuLimitPercent: 10 });
    expect(lowered.status, JSON.stringify(lowered.body)).toBe(200);
    expect(lowered.body).toMatchObject({ state: 'running', effectiveCpuLimitPercent: 10 });

    const vmLog = await f.request(f.admin, 'GET', `/api/v1/audit?entityType=vm&entityId=${own}&limit=100`);
    const update = vmLog.body.items.find((e: { action: string }) => e.action === 'vm.update');
    expect(update).toMatchObject({
      userId: owner.id,
      before: { cpuLimitPercent: 60, effectiveCpuLimitPercent: 40 },
      after: { cpuLimitPercent: 10 },
    });
    const poolLog = await f.request(
      f.admin,
      'GET',
      `/api/v1/audit?entityType=pool&entityId=${team}&limit=100`,
    );
    expect(poolLog.body.items[0]).toMatchObject({
      action: 'pool.update',
      before: { cpuLimitPercent: null },
      after: { cpuLimitPercent: 40 },
    });

    // Lifted on the pool: the VM's own limit holds again.
    await f.request(f.admin, 'PATCH', `/api/v1/pools/${team}`, { cpuLimitPercent: null });
    expect(await vmAnswer(own)).toMatchObject({ cpuLimitPercent: 10, effectiveCpuLimitPercent: 10 });
    expect(await vmAnswer(none)).toMatchObject({ effectiveCpuLimitPercent: null });
  });

  test('not while a task is under way', async () => {
    const id = await createVm('busy');
    await f.t.database.db.updateTable('vms').set({ state: 'starting' }).where('id', '=', id).execute();
    const task = await f.t.database.db
      .insertInto('tasks')
      .values({ target_type: 'vm', target_id: id, action: 'start', args: '{}', user_id: owner.id })
      .returning('id')
      .executeTakeFirstOrThrow();
    await f.t.database.db.updateTable('vms').set({ task_id: task.id }).where('id', '=', id).execute();
    const refused = await f.request(owner, 'PATCH', `/api/v1/vms/${id}`, { cpuLimitPercent: 50 });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ error: 'invalid_state', state: 'starting' });
  });
});
