import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { PostgresRollups } from '../../ingest/store/postgres-rollups.js';
import { PostgresStore } from '../../ingest/store/postgres-store.js';
import type { Point } from '../../ingest/types.js';
import { createLogger } from '../../lib/log.js';
import { createTestApp, type TestApp } from '../../lib/testing/app.js';
import { insertHost, insertVm } from '../../lib/testing/fleet.js';
import { authHeader, createPool, createUserWithToken, grantRole } from '../../lib/testing/users.js';
import { authRoutes } from '../auth/auth.routes.js';
import { graphStep } from './graph-step.js';
import { metricsRoutes } from './metrics.routes.js';

const log = createLogger('silent');
const NOW = Math.floor(Date.now() / 1000);
const START = NOW - 1800;
const MiB = 1024 * 1024;
const VM_UUID = '6f1e4c52-5a8e-4d3b-9c7a-1b2c3d4e5f60';

/** Half an hour of 10 s collectd data for two hosts (h1 20 % busy, h2 60 %) and one guest. */
function fleetData(): Point[] {
  const points: Point[] = [];
  const counter = (measurement: string, tags: Record<string, string>, perSecond: number, t: number) =>
    points.push({ measurement, tags, fields: { value: perSecond * (t - START) }, time: t });
  for (let t = START; t < NOW; t += 10) {
    for (const [host, busy] of [
      ['h1', 20],
      ['h2', 60],
    ] as const) {
      for (const cpu of ['0', '1']) {
        counter('cpu_value', { host, instance: cpu, type: 'cpu', type_instance: 'idle' }, 100 - busy, t);
        counter('cpu_value', { host, instance: cpu, type: 'cpu', type_instance: 'user' }, busy, t);
      }
      for (const [kind, bytes] of [
        ['used', 1024 * MiB],
        ['free', 3072 * MiB],
      ] as const) {
        points.push({
          measurement: 'memory_value',
          tags: { host, type: 'memory', type_instance: kind },
          fields: { value: bytes },
          time: t,
        });
      }
      points.push({
        measurement: 'load_shortterm',
        tags: { host },
        fields: { value: host === 'h1' ? 1 : 3 },
        time: t,
      });
      counter('interface_rx', { host, instance: 'eth0', type: 'if_octets' }, 1000, t);
      counter('interface_rx', { host, instance: 'lo', type: 'if_octets' }, 1e6, t);
      counter('interface_tx', { host, instance: 'eth0', type: 'if_octets' }, 200, t);
      counter('disk_read', { host, instance: 'sda', type: 'disk_octets' }, 4096, t);
      counter('disk_read', { host, instance: 'sda1', type: 'disk_octets' }, 4096, t);
    }
    // Half of one of its two vCPUs: 25 %.
    counter('virt_value', { host: VM_UUID, type: 'virt_cpu_total' }, 0.5e9, t);
    points.push({
      measurement: 'virt_value',
      tags: { host: VM_UUID, type: 'memory', type_instance: 'total' },
      fields: { value: 512 * MiB },
      time: t,
    });
  }
  return points;
}

/** What herd's graph recorder writes: r1 with one of its 4 CPUs busy (peaks at 2), r2 with 3. */
function recordedData(): Point[] {
  const points: Point[] = [];
  for (let t = START; t < NOW; t += 10) {
    const peak = (t - START) % 60 === 0 ? 1 : 0;
    points.push({
      measurement: 'herd_host',
      tags: { host: 'r1' },
      fields: { cpu_busy_cores: 1 + peak, net_rx: 500 },
      time: t,
    });
    points.push({
      measurement: 'herd_host',
      tags: { host: 'r2' },
      fields: { cpu_busy_cores: 3, net_rx: 1500 },
      time: t,
    });
  }
  return points;
}

/** Recorded figures of g1, down for two minutes ten minutes in. */
const DOWN = { from: START + 600, to: START + 720 };
function gappyData(): Point[] {
  const points: Point[] = [];
  for (let t = START; t < NOW; t += 10)
    if (t < DOWN.from || t >= DOWN.to)
      points.push({ measurement: 'herd_host', tags: { host: 'g1' }, fields: { net_rx: 100 }, time: t });
  return points;
}

let t: TestApp;
let store: PostgresStore;
const ids = { pool: 0, h1: 0, h2: 0, vmPool: 0, vm: 0, recordedPool: 0, r1: 0, g1: 0 };
const users = { admin: '', owner: '', stranger: '', neighbour: '' };

beforeAll(async () => {
  t = await createTestApp({ routes: [authRoutes, metricsRoutes] });
  const db = t.database.db;
  store = new PostgresStore({ db, batchSize: 5000, flushMs: 20, memoryPoints: 1e6, retentionDays: 30, log });
  const rollups = new PostgresRollups(db, t.deps.config.rollups, log);
  t.deps.store = store;
  t.deps.rollups = rollups;
  await store.start();
  store.write(fleetData());
  await store.flush();
  await rollups.refresh(START, NOW);
  store.write(recordedData());
  store.write(gappyData());
  await store.flush();

  ids.pool = await createPool(db, { name: 'rack' });
  ids.h1 = await insertHost(db, { poolId: ids.pool, cpus: 2, memoryMiB: 4096, hostname: 'h1' });
  ids.h2 = await insertHost(db, { poolId: ids.pool, cpus: 2, memoryMiB: 4096, hostname: 'h2' });
  ids.vmPool = await createPool(db, { name: 'team', kind: 'vm', parentId: ids.pool });
  ids.recordedPool = await createPool(db, { name: 'recorded' });
  ids.r1 = await insertHost(db, { poolId: ids.recordedPool, cpus: 4, memoryMiB: 4096, hostname: 'r1' });
  await insertHost(db, { poolId: ids.recordedPool, cpus: 4, memoryMiB: 4096, hostname: 'r2' });
  const gappy = await createPool(db, { name: 'gappy' });
  ids.g1 = await insertHost(db, { poolId: gappy, cpus: 1, memoryMiB: 1024, hostname: 'g1' });
  const owner = await createUserWithToken(db, { username: 'owner' });
  const neighbour = await createUserWithToken(db, { username: 'neighbour' });
  await grantRole(db, ids.vmPool, owner.id, 'user');
  await grantRole(db, ids.vmPool, neighbour.id, 'user');
  ids.vm = await insertVm(db, { poolId: ids.vmPool, ownerId: owner.id, vcpus: 2, state: 'running' });
  await db.updateTable('vms').set({ uuid: VM_UUID }).where('id', '=', ids.vm).execute();
  users.owner = owner.token;
  users.neighbour = neighbour.token;
  users.admin = (await createUserWithToken(db, { username: 'root', superAdmin: true })).token;
  users.stranger = (await createUserWithToken(db, { username: 'stranger' })).token;
});
afterAll(async () => {
  await store.stop();
  await t.close();
});

async function get(token: string, query: Record<string, string | number>) {
  const qs = new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)]));
  return t.app.inject({ method: 'GET', url: `/api/v1/metrics?${qs}`, headers: authHeader(token) });
}

/** The averages of a line, without its first bucket (whose rate has no predecessor in range). */
function averages(
  body: { series: Array<{ name: string; points: Array<[number, number, number]> }> },
  name: string,
) {
  const line = body.series.find((s) => s.name === name);
  const values = line ? line.points.slice(1, -1).map(([, avg]) => avg) : [];
  expect(values.length, `${name} has buckets`).toBeGreaterThan(2);
  return values;
}

const window = { from: START + 60, to: NOW - 60, width: 20 };

describe('what a graph does not make up', () => {
  test('a host down is a gap (a point of nulls), not a line across it', async () => {
    const body = (
      await get(users.admin, { entity: `host:${ids.g1}`, metric: 'network', from: START, to: NOW, step: 10 })
    ).json();
    const rx: Array<[number, number | null, number | null]> = body.series.find(
      (s: { name: string }) => s.name === 'rx',
    ).points;
    const gaps = rx.filter(([, avg]) => avg === null);
    expect(gaps).toEqual([[DOWN.from - (DOWN.from % 10), null, null]]);
    expect(rx.filter(([, avg]) => avg !== null).every(([, avg]) => avg === 100)).toBe(true);
  });

  test('the buckets still filling are named: partialFrom', async () => {
    const body = (await get(users.admin, { entity: `host:${ids.g1}`, metric: 'network', step: 60 })).json();
    const now = Date.now() / 1000;
    expect(body.partialFrom % 60).toBe(0);
    // The bucket holding "20 s ago": not complete yet; the one before it is.
    expect(body.partialFrom).toBeLessThanOrEqual(now - 20);
    expect(body.partialFrom).toBeGreaterThan(now - 20 - 60 - 5);
  });
});

describe('host graphs', () => {
  test('CPU busy from jiffies, as a percentage', async () => {
    const res = await get(users.admin, { entity: `host:${ids.h1}`, metric: 'cpu', ...window });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ unit: '%', source: 'raw', step: graphStep({ ...window, base: 10 }) });
    expect(body.points).toBeUndefined();
    for (const v of averages(body, 'busy')) expect(v).toBeCloseTo(20, 6);
    for (const [, , peak] of body.series[0].points.slice(1)) expect(peak).toBeCloseTo(20, 6);
  });

  test('memory in MiB, load as it is', async () => {
    const memory = (await get(users.admin, { entity: `host:${ids.h2}`, metric: 'memory', ...window })).json();
    expect(memory.series.map((s: { name: string }) => s.name)).toEqual(['used', 'free']);
    for (const v of averages(memory, 'used')) expect(v).toBe(1024);
    const load = (await get(users.admin, { entity: `host:${ids.h2}`, metric: 'load', ...window })).json();
    expect(load.series.map((s: { name: string }) => s.name)).toEqual(['shortterm', 'midterm', 'longterm']);
    for (const v of averages(load, 'shortterm')) expect(v).toBe(3);
  });

  test('network and disk rates leave out loopback and partitions', async () => {
    const net = (await get(users.admin, { entity: `host:${ids.h1}`, metric: 'network', ...window })).json();
    expect(net.unit).toBe('bytes/s');
    for (const v of averages(net, 'rx')) expect(v).toBeCloseTo(1000, 6);
    for (const v of averages(net, 'tx')) expect(v).toBeCloseTo(200, 6);
    const disk = (await get(users.admin, { entity: `host:${ids.h1}`, metric: 'disk', ...window })).json();
    for (const v of averages(disk, 'read')) expect(v).toBeCloseTo(4096, 6);
  });

  test('never more buckets than pixels', async () => {
    const body = (
      await get(users.admin, { entity: `host:${ids.h1}`, metric: 'load', from: START, to: NOW, width: 7 })
    ).json();
    expect(body.step).toBeGreaterThanOrEqual(1800 / 7);
    expect(body.series[0].points.length).toBeLessThanOrEqual(8);
  });
});

test('a hardware pool sums and averages over its hosts (CPU weighted by CPU time)', async () => {
  const cpu = (await get(users.admin, { entity: `pool:${ids.pool}`, metric: 'cpu', ...window })).json();
  for (const v of averages(cpu, 'busy')) expect(v).toBeCloseTo(40, 6);
  const net = (await get(users.admin, { entity: `pool:${ids.pool}`, metric: 'network', ...window })).json();
  for (const v of averages(net, 'rx')) expect(v).toBeCloseTo(2000, 6);
  const load = (await get(users.admin, { entity: `pool:${ids.pool}`, metric: 'load', ...window })).json();
  const shortterm = load.series.find((s: { name: string }) => s.name === 'shortterm');
  expect(shortterm.points[1].slice(1)).toEqual([2, 3]);
});

test("herd's recorded figures are read first: one series per host, CPU as a share of the inventory's CPUs", async () => {
  const cpu = (await get(users.admin, { entity: `host:${ids.r1}`, metric: 'cpu', ...window })).json();
  expect(cpu.series.map((s: { name: string }) => s.name)).toEqual(['busy']);
  const points: Array<[number, number, number]> = cpu.series[0].points;
  for (const [, avg, peak] of points) {
    expect(avg).toBeGreaterThanOrEqual(25);
    expect(avg).toBeLessThan(50);
    expect([25, 50]).toContain(peak);
  }
  expect(points.filter(([, , peak]) => peak === 50).length).toBeGreaterThan(points.length / 2);
  const pool = (
    await get(users.admin, { entity: `pool:${ids.recordedPool}`, metric: 'cpu', ...window })
  ).json();
  for (const [, avg] of pool.series[0].points) expect(avg).toBeGreaterThanOrEqual(50);
  const net = (
    await get(users.admin, { entity: `pool:${ids.recordedPool}`, metric: 'network', ...window })
  ).json();
  for (const v of averages(net, 'rx')) expect(v).toBe(2000);
});

test('VM graphs come from the virt plugin under its UUID; CPU as a share of its vCPUs', async () => {
  const cpu = (await get(users.owner, { entity: `vm:${ids.vm}`, metric: 'cpu', ...window })).json();
  for (const v of averages(cpu, 'busy')) expect(v).toBeCloseTo(25, 6);
  const memory = (await get(users.owner, { entity: `vm:${ids.vm}`, metric: 'memory', ...window })).json();
  for (const v of averages(memory, 'total')) expect(v).toBe(512);
  const pool = (await get(users.owner, { entity: `pool:${ids.vmPool}`, metric: 'cpu', ...window })).json();
  for (const v of averages(pool, 'busy')) expect(v).toBeCloseTo(25, 6);
});

test('long ranges read the rollups', async () => {
  const res = await get(users.admin, {
    entity: `host:${ids.h1}`,
    metric: 'cpu',
    from: NOW - 7 * 86_400,
    to: NOW,
    width: 800,
  });
  const body = res.json();
  expect(body.source).toBe('rollup');
  expect(body.step % 300).toBe(0);
  const busy = body.series[0].points.filter(([, avg]: [number, number | null]) => avg !== null);
  expect(busy.length).toBeGreaterThan(0);
  for (const [, avg] of busy) expect(avg).toBeCloseTo(20, 6);
});

test('what the caller may not see answers 404, like what does not exist', async () => {
  for (const entity of [`host:${ids.h1}`, `vm:${ids.vm}`, `pool:${ids.pool}`, 'host:999999']) {
    const res = await get(users.stranger, { entity, metric: 'cpu' });
    expect(res.statusCode, entity).toBe(404);
  }
  // Another user of the same VM pool sees the pool but not the owner's VM, and the pool graph leaves it out.
  expect((await get(users.neighbour, { entity: `vm:${ids.vm}`, metric: 'cpu' })).statusCode).toBe(404);
  const pool = await get(users.neighbour, { entity: `pool:${ids.vmPool}`, metric: 'cpu' });
  expect(pool.statusCode).toBe(200);
  expect(pool.json().series).toEqual([]);
  expect(
    (await t.app.inject({ method: 'GET', url: `/api/v1/metrics?entity=host:${ids.h1}&metric=cpu` }))
      .statusCode,
  ).toBe(401);
});

test('bad questions answer 400 naming the field', async () => {
  const cases: Array<[Record<string, string | number>, string]> = [
    [{ entity: 'rack:1', metric: 'cpu' }, 'entity'],
    [{ entity: `vm:${ids.vm}`, metric: 'load' }, 'metric'],
    [{ entity: `host:${ids.h1}`, metric: 'cpu', from: 'yesterday' }, 'from'],
    [{ entity: `host:${ids.h1}`, metric: 'cpu', from: NOW, to: NOW - 60 }, 'to'],
    [{ entity: `host:${ids.h1}`, metric: 'cpu', width: 0 }, 'width'],
  ];
  for (const [query, field] of cases) {
    const res = await get(users.admin, query);
    expect(res.statusCode, JSON.stringify(query)).toBe(400);
    expect(res.json().message).toContain(field);
  }
});

test('the endpoint is documented in the OpenAPI document', async () => {
  const doc = (await t.app.inject({ method: 'GET', url: '/api/docs/json' })).json();
  const op = doc.paths['/api/v1/metrics'].get;
  expect(op.parameters.map((p: { name: string }) => p.name)).toEqual(
    expect.arrayContaining(['entity', 'metric', 'from', 'to', 'step', 'width']),
  );
});
