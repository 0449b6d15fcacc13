import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type ExpectedNotification, replayAt } from '../../ingest/protocol/test-fixtures.js';
import { createLogger } from '../../lib/log.js';
import { createTestApp, type TestApp } from '../../lib/testing/app.js';
import { insertHost, insertVm } from '../../lib/testing/fleet.js';
import { authHeader, createPool, createUserWithToken, grantRole } from '../../lib/testing/users.js';
import { collectdLoop } from '../alerts/test-support.js';
import { pruneEvents } from './events.repository.js';

/**
 * collectd's captured notification packets (re-timed to now) go over real UDP through the real pipeline into
 * PostgreSQL's events table; the API answers them to whoever may see their host or VM.
 */

const log = createLogger(process.env.HERD_TEST_LOG_LEVEL ?? 'silent');
let t: TestApp;
let loop: Awaited<ReturnType<typeof collectdLoop>>;
let admin: string;
let hwPool: number;
let vmPool: number;
let otherPool: number;
let hostId: number;
let expected: ExpectedNotification[];

const get = async (url: string, token: string) => {
  const res = await t.app.inject({ method: 'GET', url, headers: authHeader(token) });
  return { status: res.statusCode, body: res.json() };
};

beforeAll(async () => {
  t = await createTestApp();
  const db = t.database.db;
  admin = (await createUserWithToken(db, { username: 'root', superAdmin: true })).token;
  hwPool = await createPool(db, { name: 'rack' });
  vmPool = await createPool(db, { name: 'team', kind: 'vm', parentId: hwPool });
  otherPool = await createPool(db, { name: 'elsewhere' });
  hostId = await insertHost(db, { poolId: hwPool, cpus: 4, memoryMiB: 8192, hostname: 'notif-host' });
  loop = await collectdLoop(Date.now, log, { db });
  const replay = replayAt('notifications');
  expected = replay.expected.filter((r): r is ExpectedNotification => r.kind === 'notification');
  await loop.sendPackets(replay.packets.map((p) => p.bytes));
});
afterAll(async () => {
  await loop?.close();
  await t?.close();
});

describe('collectd notifications of a host', () => {
  test('every notification of the capture is stored, tied to its host, as collectd recorded it', async () => {
    const { status, body } = await get(`/api/v1/hosts/${hostId}/events?limit=1000`, admin);
    expect(status).toBe(200);
    expect(body.total).toBe(expected.length);
    // the same notifications (severity, plugin, type, message), each at collectd's time (PostgreSQL keeps µs)
    const key = (e: { severity: string; plugin: string; type: string; message: string }) =>
      `${e.severity}|${e.plugin}|${e.type}|${e.message}`;
    const got = body.items.map((e: any) => [key(e), Date.parse(e.time)] as const);
    const want = expected.map(
      (r) => [key({ ...r, severity: r.severity_name.toLowerCase() }), r.time * 1000] as const,
    );
    expect(got.map(([k]: readonly [string, number]) => k).sort()).toEqual(want.map(([k]) => k).sort());
    for (const [k, time] of want) {
      const match = got.findIndex(
        ([gk, gt]: readonly [string, number]) => gk === k && Math.abs(gt - time) <= 1,
      );
      expect(match, `${k} at ${time}`).toBeGreaterThanOrEqual(0);
      got.splice(match, 1);
    }
    for (const e of body.items) expect(e).toMatchObject({ host: 'notif-host', hostId, vmId: null });
    // newest first
    const times = body.items.map((e: any) => Date.parse(e.time));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    const exec = body.items.find((e: any) => e.plugin === 'exec');
    expect(exec).toMatchObject({ pluginInstance: 'putnotif', type: 'gauge' });
    expect(exec.typeInstance).toMatch(/^test[123]$/);
  });

  test('filters: severity, plugin, since, limit and offset', async () => {
    const failures = expected.filter((r) => r.severity_name === 'FAILURE');
    const f = await get(`/api/v1/events?hostId=${hostId}&severity=failure`, admin);
    expect(f.body.total).toBe(failures.length);
    expect(f.body.items.map((e: any) => e.severity)).toEqual(failures.map(() => 'failure'));
    const exec = await get(`/api/v1/hosts/${hostId}/events?plugin=exec`, admin);
    expect(exec.body.total).toBe(expected.filter((r) => r.plugin === 'exec').length);
    const latest = Math.max(...expected.map((r) => r.time));
    const since = new Date(Math.floor(latest * 1000) - 1500).toISOString();
    const recent = await get(`/api/v1/hosts/${hostId}/events?since=${since}`, admin);
    expect(recent.body.total).toBe(expected.filter((r) => r.time * 1000 >= Date.parse(since)).length);
    expect(recent.body.total).toBeLessThan(expected.length);
    const page = await get(`/api/v1/hosts/${hostId}/events?limit=3&offset=3`, admin);
    const all = await get(`/api/v1/hosts/${hostId}/events`, admin);
    expect(page.body.total).toBe(expected.length);
    expect(page.body.items.map((e: any) => e.id)).toEqual(all.body.items.slice(3, 6).map((e: any) => e.id));
  });

  test("visible to who sees the host's pool; 404 for a host one may not see", async () => {
    const db = t.database.db;
    const monitor = await createUserWithToken(db, { username: 'mon' });
    await grantRole(db, hwPool, monitor.id, 'monitor');
    const outsider = await createUserWithToken(db, { username: 'out' });
    await grantRole(db, otherPool, outsider.id, 'admin');
    expect((await get(`/api/v1/hosts/${hostId}/events`, monitor.token)).body.total).toBe(expected.length);
    expect((await get(`/api/v1/events?hostId=${hostId}`, monitor.token)).body.total).toBe(expected.length);
    expect((await get(`/api/v1/hosts/${hostId}/events`, outsider.token)).status).toBe(404);
    expect((await get(`/api/v1/events`, outsider.token)).body).toEqual({ items: [], total: 0 });
  });

  test('bad input answers 400 naming the field, unknown ids 404', async () => {
    const bad = await get('/api/v1/events?severity=bogus', admin);
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/severity/);
    const since = await get(`/api/v1/hosts/${hostId}/events?since=yesterday`, admin);
    expect(since.status).toBe(400);
    expect(since.body.message).toMatch(/since/);
    expect((await get('/api/v1/events?limit=0', admin)).status).toBe(400);
    expect((await get('/api/v1/hosts/999999/events', admin)).status).toBe(404);
    expect((await get('/api/v1/vms/999999/events', admin)).status).toBe(404);
  });
});

describe("a guest's notifications belong to its VM", () => {
  test('by UUID in the host part (HostnameFormat uuid) or domain name in the plugin instance', async () => {
    const db = t.database.db;
    const owner = await createUserWithToken(db, { username: 'owner' });
    const neighbour = await createUserWithToken(db, { username: 'neighbour' });
    const hostMonitor = await createUserWithToken(db, { username: 'rackmon' });
    await grantRole(db, vmPool, owner.id, 'user');
    await grantRole(db, vmPool, neighbour.id, 'user');
    // the hardware pool's monitor sees the VM pool below it: give it a pool of its own to see the host only
    const rack2 = await createPool(db, { name: 'rack2' });
    const host2 = await insertHost(db, { poolId: rack2, cpus: 4, memoryMiB: 8192, hostname: 'hv2.example' });
    await grantRole(db, rack2, hostMonitor.id, 'monitor');
    const vmId = await insertVm(db, { poolId: vmPool, ownerId: owner.id, hostId: host2, state: 'running' });
    const vm = await db
      .selectFrom('vms')
      .select(['uuid', 'name'])
      .where('id', '=', vmId)
      .executeTakeFirstOrThrow();
    const now = Date.now() / 1000;
    const base = { type: 'file_system', typeInstance: '', pluginInstance: '' };
    await loop.notify({
      ...base,
      host: vm.uuid,
      plugin: 'virt',
      time: now - 2,
      severity: 2,
      message: 'by uuid',
    });
    await loop.notify({
      ...base,
      host: 'hv2', // the short name of herd's hv2.example
      plugin: 'virt',
      pluginInstance: `herd-${vmId}-${vm.name}`,
      time: now - 1,
      severity: 1,
      message: 'by domain name',
    });
    await loop.notify({
      ...base,
      host: 'hv2',
      plugin: 'df',
      time: now,
      severity: 4,
      message: 'the host itself',
    });

    const mine = await get(`/api/v1/vms/${vmId}/events`, owner.token);
    expect(mine.status).toBe(200);
    expect(mine.body.items).toMatchObject([
      { message: 'by domain name', severity: 'failure', vmId, hostId: host2, host: 'hv2' },
      { message: 'by uuid', severity: 'warning', vmId, hostId: host2, host: vm.uuid },
    ]);
    expect((await get(`/api/v1/vms/${vmId}/events`, neighbour.token)).status).toBe(404);
    expect((await get(`/api/v1/events?vmId=${vmId}`, neighbour.token)).body.total).toBe(0);
    // the host's monitor sees the host's own notification, not the guest's
    const hostView = await get(`/api/v1/hosts/${host2}/events`, hostMonitor.token);
    expect(hostView.body.items.map((e: any) => e.message)).toEqual(['the host itself']);
    const adminView = await get(`/api/v1/hosts/${host2}/events`, admin);
    expect(adminView.body.items.map((e: any) => e.message)).toEqual([
      'the host itself',
      'by domain name',
      'by uuid',
    ]);
  });

  test('a notification about nothing herd knows is for the super-admin only', async () => {
    const db = t.database.db;
    const user = await createUserWithToken(db, { username: 'plain' });
    await grantRole(db, hwPool, user.id, 'admin');
    await loop.notify({
      host: 'stranger',
      plugin: 'load',
      pluginInstance: '',
      type: 'load',
      typeInstance: '',
      time: Date.now() / 1000,
      severity: 2,
      message: 'from a stranger',
    });
    const all = await get('/api/v1/events?limit=1000', admin);
    expect(all.body.items.find((e: any) => e.message === 'from a stranger')).toMatchObject({
      hostId: null,
      vmId: null,
    });
    const theirs = await get('/api/v1/events?limit=1000', user.token);
    expect(theirs.body.items.some((e: any) => e.message === 'from a stranger')).toBe(false);
    // the host's ten, and the guest's two: its VM pool is below the hardware pool this admin holds
    expect(theirs.body.total).toBe(expected.length + 2);
  });
});

test('retention: notifications received before the cut-off are pruned, newer ones kept', async () => {
  const db = t.database.db;
  const old = new Date(Date.now() - 31 * 86_400_000);
  await db
    .insertInto('events')
    .values({ time: old, received_at: old, host: 'notif-host', severity: 'WARNING', message: 'long ago' })
    .execute();
  const before = await get(`/api/v1/hosts/${hostId}/events?limit=1000`, admin);
  expect(before.body.total).toBe(expected.length + 1);
  const pruned = await pruneEvents(db, new Date(Date.now() - 30 * 86_400_000));
  expect(pruned).toBe(1);
  const after = await get(`/api/v1/hosts/${hostId}/events?limit=1000`, admin);
  expect(after.body.total).toBe(expected.length);
  expect(after.body.items.some((e: any) => e.message === 'long ago')).toBe(false);
});
