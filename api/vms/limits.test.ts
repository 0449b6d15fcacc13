import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createPool, createUserWithToken, grantRole } from '../../lib/testing/users.js';
import { createFleet, type Fleet, type User } from './testing/vm-fleet.js';

/**
 * Limits (api/vms/limits.ts) through the API on libvirt's test driver: validation, a VM's effective limit (the
 * lower of its own and its VM pool's), who may set which, the audit log, and the `<cputune>`, `<bandwidth>` and
 * `<iotune>` of the definition a start writes. The limits enforced on a real guest are proven in
 * cpu-limit.real.test.ts and io-limits.real.test.ts.
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

describe('network and disk limits', () => {
  const fields = [
    ['netInboundKiBps', 100 * 1024 * 1024],
    ['netInboundPeakKiBps', 100 * 1024 * 1024],
    ['netInboundBurstKiB', 100 * 1024 * 1024],
    ['netOutboundKiBps', 100 * 1024 * 1024],
    ['netOutboundPeakKiBps', 100 * 1024 * 1024],
    ['netOutboundBurstKiB', 100 * 1024 * 1024],
    ['diskReadBytesPerSec', 1e15],
    ['diskWriteBytesPerSec', 1e15],
    ['diskReadIops', 100_000_000],
    ['diskWriteIops', 100_000_000],
  ] as const;

  test.each(fields)(
    '%s: negative, zero, fractional, text and absurd values are a 400 naming it',
    async (field, max) => {
      for (const bad of [-1, 0, 2.5, '100', max + 1, 1e300]) {
        const created = await f.request(owner, 'POST', '/api/v1/vms', {
          name: 'bad',
          poolId: team,
          vcpus: 1,
          memoryMiB: 256,
          [field]: bad,
        });
        expect(created.status, `${field}=${bad}`).toBe(400);
        expect(created.body.message).toContain(field);
        const pool = await f.request(f.admin, 'PATCH', `/api/v1/pools/${team}`, { [field]: bad });
        expect(pool.status, `${field}=${bad}`).toBe(400);
        expect(pool.body.message).toContain(field);
      }
      // The largest value is accepted and answered as set, and null lifts it.
      const id = await createVm(`max-${field.toLowerCase()}`, { [field]: max });
      expect(await vmAnswer(id)).toMatchObject({ [field]: max });
      const lifted = await f.request(owner, 'PATCH', `/api/v1/vms/${id}`, { [field]: null });
      expect(lifted.body).toMatchObject({ [field]: null });
    },
  );

  test('a hardware pool has none; a user cannot set the pool’s', async () => {
    const patched = await f.request(f.admin, 'PATCH', `/api/v1/pools/${rack}`, { diskWriteIops: 100 });
    expect(patched.status).toBe(400);
    expect(patched.body).toMatchObject({ field: 'diskWriteIops' });
    expect((await f.request(owner, 'PATCH', `/api/v1/pools/${team}`, { netInboundKiBps: 100 })).status).toBe(
      403,
    );
  });

  test('effective: the lower of the VM’s and its pool’s, each kind on its own; in the domain a start defines', async () => {
    const id = await createVm('io-capped', {
      nics: 1,
      diskReadBytesPerSec: 4_000_000,
      diskWriteIops: 50,
      netOutboundKiBps: 512,
      netOutboundPeakKiBps: 1024,
      netOutboundBurstKiB: 256,
    });
    const pool = await f.request(f.admin, 'PATCH', `/api/v1/pools/${team}`, {
      diskReadBytesPerSec: 1_000_000,
      diskWriteIops: 500,
      netInboundKiBps: 2048,
    });
    expect(pool.status, JSON.stringify(pool.body)).toBe(200);
    expect(pool.body).toMatchObject({
      diskReadBytesPerSec: 1_000_000,
      netInboundKiBps: 2048,
      netOutboundKiBps: null,
    });
    expect(await vmAnswer(id)).toMatchObject({
      diskReadBytesPerSec: 4_000_000,
      effectiveDiskReadBytesPerSec: 1_000_000,
      diskWriteIops: 50,
      effectiveDiskWriteIops: 50,
      netInboundKiBps: null,
      effectiveNetInboundKiBps: 2048,
      netOutboundKiBps: 512,
      effectiveNetOutboundKiBps: 512,
      effectiveNetOutboundPeakKiBps: 1024,
      effectiveNetOutboundBurstKiB: 256,
      diskWriteBytesPerSec: null,
      effectiveDiskWriteBytesPerSec: null,
    });

    // A volume, so that the domain has a disk to tune.
    const db = f.t.database.db;
    const storage = await db
      .insertInto('storage_pools')
      .values({ pool_id: rack, type: 'nfs', name: 'io-limits' })
      .returning('id')
      .executeTakeFirstOrThrow();
    const volume = await db
      .insertInto('volumes')
      .values({ storage_pool_id: storage.id, name: 'io.img', path: '/var/lib/herd/io.img', size_gib: 1 })
      .returning('id')
      .executeTakeFirstOrThrow();
    expect((await f.request(owner, 'PATCH', `/api/v1/vms/${id}`, { volumes: [volume.id] })).status).toBe(200);

    const started = await f.request(owner, 'POST', `/api/v1/vms/${id}/actions`, { action: 'start' });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    expect((await f.waitTask(started.body.taskId)).state).toBe('done');
    const driver = await f.connections.get(host.uri);
    const xml = await driver.domainXml((await vmAnswer(id)).uuid);
    expect(xml).toMatch(/<inbound average=["']2048["']\/>/);
    expect(xml).toMatch(/<outbound average=["']512["'] peak=["']1024["'] burst=["']256["']\/>/);
    const iotune = /<iotune>([\s\S]*?)<\/iotune>/.exec(xml)?.[1] ?? '';
    expect(iotune).toMatch(/<read_bytes_sec>1000000<\/read_bytes_sec>/);
    expect(iotune).toMatch(/<write_iops_sec>50<\/write_iops_sec>/);
    expect(iotune).not.toMatch(/write_bytes_sec/);

    // Running: accepted (libvirt's test driver shapes nothing live; the next definition carries it).
    const changed = await f.request(owner, 'PATCH', `/api/v1/vms/${id}`, { diskReadBytesPerSec: 500_000 });
    expect(changed.status, JSON.stringify(changed.body)).toBe(200);
    expect(changed.body).toMatchObject({ state: 'running', effectiveDiskReadBytesPerSec: 500_000 });
    const poolLog = await f.request(f.admin, 'GET', `/api/v1/audit?entityType=pool&entityId=${team}&limit=1`);
    expect(poolLog.body.items[0]).toMatchObject({
      action: 'pool.update',
      before: { diskReadBytesPerSec: null },
      after: { diskReadBytesPerSec: 1_000_000, netInboundKiBps: 2048 },
    });
    await f.request(f.admin, 'PATCH', `/api/v1/pools/${team}`, {
      diskReadBytesPerSec: null,
      diskWriteIops: null,
      netInboundKiBps: null,
    });
  });
});
