import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { InfluxRollups } from '../../ingest/store/influx-rollups.js';
import { InfluxStore } from '../../ingest/store/influx-store.js';
import type { MetricsStore } from '../../ingest/store/metrics-store.js';
import { PostgresRollups } from '../../ingest/store/postgres-rollups.js';
import { PostgresStore } from '../../ingest/store/postgres-store.js';
import type { Rollups } from '../../ingest/store/rollups.js';
import type { Point } from '../../ingest/types.js';
import { createLogger } from '../../lib/log.js';
import { createTestApp, type TestApp } from '../../lib/testing/app.js';
import { testInflux } from '../../lib/testing/db.js';
import { insertHost, insertVm } from '../../lib/testing/fleet.js';
import { authHeader, createPool, createUserWithToken, grantRole } from '../../lib/testing/users.js';
import type { Database } from '../../schema/db.js';
import { authRoutes } from '../auth/auth.routes.js';
import { CAPACITY_MEASUREMENT, CapacitySampler, capacityPoint, quotaPoint } from './capacity-sampler.js';
import { DAY_SECONDS } from './forecast.js';
import { forecastRoutes } from './forecast.routes.js';

const log = createLogger('silent');
const NOW = Math.floor(Date.now() / 1000);
const START = NOW - 30 * DAY_SECONDS;
const EVERY = 600;
const days = (t: number) => (t - NOW) / DAY_SECONDS;
const daily = (t: number) => Math.sin((2 * Math.PI * t) / DAY_SECONDS);

/**
 * 30 days of synthetic history with known answers, as herd's graph recorder and capacity sampler write it:
 * - memory used over both hosts: 22,768 MiB now, +500 MiB a day, ±500 daily, of 32,768: the daily peaks reach
 *   the hosts' memory when the trend is at 32,268, in 19 days;
 * - CPU busy: 2 cores of 8 on each host, flat: never full;
 * - vCPUs allocated: 40 now, +1 a day, of 64 (16 CPUs × ratio 4): full in 24 days;
 * - the pool-total quota's memory: 7,000 MiB now, +100 a day, limit 10,000: full in 30 days.
 */
function history(poolId: number): Point[] {
  const points: Point[] = [];
  for (let t = START; t < NOW; t += EVERY) {
    const perHost = (22_768 + 500 * days(t) + 500 * daily(t)) / 2;
    for (const host of ['fc-h1', 'fc-h2']) {
      points.push({
        measurement: 'herd_host',
        tags: { host },
        fields: { mem_used: perHost, cpu_busy_cores: 2 + 0.1 * daily(t) },
        time: t,
      });
    }
    points.push(
      capacityPoint(poolId, t, {
        allocated: { vcpus: 40 + days(t), memory_mib: 4096, storage_gib: 100 },
        capacity: { vcpus: 64, memory_mib: 32_768, storage_gib: 1000 },
      }),
    );
    points.push(
      quotaPoint(
        {
          poolId,
          userId: null,
          used: { vcpus: 4, memoryMiB: 7000 + 100 * days(t), storageGiB: 10, nics: 1, vms: 1 },
          limits: { vcpus: null, memoryMiB: 10_000, storageGiB: null, nics: null, vms: null },
        },
        t,
      ),
    );
  }
  return points;
}

type Backend = { store: MetricsStore; rollups: (db: Database) => Rollups; close(): Promise<void> };
const settings = { stepSeconds: 300, retentionDays: 365, rawRetentionHours: 48 };

const backends: Array<[string, (db: Database) => Promise<Backend>]> = [
  [
    'influx',
    async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'herd-forecast-'));
      const { url, db } = testInflux();
      const store = new InfluxStore({
        url,
        db,
        batchSize: 5000,
        flushMs: 50,
        memoryPoints: 200_000,
        spillMaxBytes: 1e7,
        spoolDir: dir,
        log,
      });
      return {
        store,
        rollups: () => new InfluxRollups(store, db, settings, log),
        close: () => rm(dir, { recursive: true, force: true }),
      };
    },
  ],
  [
    'postgres',
    async (db) => ({
      store: new PostgresStore({
        db,
        batchSize: 5000,
        flushMs: 50,
        memoryPoints: 200_000,
        retentionDays: 100,
        log,
      }),
      rollups: (d) => new PostgresRollups(d, settings, log),
      close: async () => undefined,
    }),
  ],
];

describe.each(backends)('pool forecast on %s', (kind, make) => {
  let t: TestApp;
  let backend: Backend;
  let rollups: Rollups;
  const ids = { pool: 0, vmPool: 0, monitor: '', stranger: '', admin: '' };

  beforeAll(async () => {
    t = await createTestApp({ routes: [authRoutes, forecastRoutes] });
    const db = t.database.db;
    backend = await make(db);
    ids.pool = await createPool(db, { name: 'forecast-rack' });
    await db.updateTable('pools').set({ cpu_allocation_ratio: 4 }).where('id', '=', ids.pool).execute();
    await insertHost(db, { poolId: ids.pool, cpus: 8, memoryMiB: 16_384, hostname: 'fc-h1' });
    await insertHost(db, { poolId: ids.pool, cpus: 8, memoryMiB: 16_384, hostname: 'fc-h2' });
    ids.vmPool = await createPool(db, { name: 'forecast-team', kind: 'vm', parentId: ids.pool });
    const { id: storagePool } = await db
      .insertInto('storage_pools')
      .values({ pool_id: ids.pool, type: 'nfs', name: 'forecast-nfs' })
      .returning('id')
      .executeTakeFirstOrThrow();
    await db
      .insertInto('volumes')
      .values({ storage_pool_id: storagePool, name: 'lun0', size_gib: 1000 })
      .execute();
    await db.insertInto('quotas').values({ pool_id: ids.pool, user_id: null, memory_mib: 10_000 }).execute();
    const monitor = await createUserWithToken(db, { username: 'watcher' });
    await grantRole(db, ids.pool, monitor.id, 'monitor');
    ids.monitor = monitor.token;
    ids.stranger = (await createUserWithToken(db, { username: 'stranger' })).token;
    ids.admin = (await createUserWithToken(db, { username: 'root', superAdmin: true })).token;

    await backend.store.start();
    backend.store.write(history(ids.pool));
    await backend.store.flush();
    rollups = backend.rollups(db);
    await rollups.start();
    await rollups.refresh(START - 3600, NOW);
    t.deps.store = backend.store;
    t.deps.rollups = rollups;
  }, 120_000);

  afterAll(async () => {
    await rollups?.stop();
    await backend?.store.stop();
    await backend?.close();
    await t?.close();
  });

  const get = (token: string, url: string) =>
    t.app.inject({ method: 'GET', url, headers: authHeader(token) });

  test('use, allocation and quota: full in the known number of days, with an interval', async () => {
    const res = await get(ids.monitor, `/api/v1/pools/${ids.pool}/forecast?horizonDays=60`);
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ poolId: ids.pool, kind: 'hardware', horizonDays: 60, stepSeconds: 3600 });
    const find = (resource: string, k: string) =>
      body.resources.find((r: { resource: string; kind: string }) => r.resource === resource && r.kind === k);

    const memory = find('memory', 'use');
    expect(memory).toMatchObject({ capacity: 32_768, unit: 'MiB', insufficientHistory: false });
    expect(memory.history.length).toBeGreaterThan(29 * 24);
    expect(memory.history[0][0]).toBeGreaterThanOrEqual(START - 3600);
    expect(Math.abs(memory.fullInDays.likely - 19)).toBeLessThan(1.5);
    expect(memory.fullInDays.low).toBeLessThanOrEqual(memory.fullInDays.likely);
    expect(memory.fullInDays.high).toBeGreaterThanOrEqual(memory.fullInDays.likely);
    expect(memory.slopePerDay.value).toBeCloseTo(500, -1);
    expect(memory.forecast[0].time).toBeGreaterThan(NOW);
    expect(memory.forecast.length).toBe(60 * 24);

    const cpu = find('cpu', 'use');
    expect(cpu).toMatchObject({ capacity: 16, unit: 'cores', fullInDays: null, insufficientHistory: false });
    expect(cpu.history.at(-1)[1]).toBeCloseTo(4, 0);

    const vcpus = find('cpu', 'allocation');
    expect(vcpus).toMatchObject({ capacity: 64, unit: 'vCPUs' });
    expect(Math.abs(vcpus.fullInDays.likely - 24)).toBeLessThan(1);
    const storage = find('storage', 'allocation');
    expect(storage).toMatchObject({ capacity: 1000, fullInDays: null });

    expect(body.quotas).toHaveLength(1);
    expect(body.quotas[0]).toMatchObject({
      poolId: ids.pool,
      userId: null,
      resource: 'memoryMiB',
      capacity: 10_000,
    });
    expect(Math.abs(body.quotas[0].fullInDays.likely - 30)).toBeLessThan(1);
  });

  test('one resource; a short horizon does not reach the capacity', async () => {
    const body = (
      await get(ids.admin, `/api/v1/pools/${ids.pool}/forecast?resource=memory&horizonDays=7`)
    ).json();
    expect(body.resources.map((r: { kind: string }) => r.kind)).toEqual(['use', 'allocation']);
    expect(body.resources[0].fullInDays).toBeNull();
    expect(body.quotas.map((q: { resource: string }) => q.resource)).toEqual(['memoryMiB']);
  });

  test('a VM pool without history or quotas: nothing to forecast, and it says so', async () => {
    const body = (await get(ids.admin, `/api/v1/pools/${ids.vmPool}/forecast`)).json();
    expect(body).toMatchObject({ kind: 'vm', resources: [], quotas: [] });
  });

  if (kind === 'postgres') {
    test('visibility and bad input: 404 for a pool the caller may not see, 400 naming the field', async () => {
      expect((await get(ids.stranger, `/api/v1/pools/${ids.pool}/forecast`)).statusCode).toBe(404);
      expect((await get(ids.admin, '/api/v1/pools/99999/forecast')).statusCode).toBe(404);
      const bad = await get(ids.admin, `/api/v1/pools/${ids.pool}/forecast?horizonDays=0`);
      expect(bad.statusCode).toBe(400);
      expect(bad.json().message).toMatch(/horizonDays/);
      const resource = await get(ids.admin, `/api/v1/pools/${ids.pool}/forecast?resource=disk`);
      expect(resource.statusCode).toBe(400);
      expect(resource.json().message).toMatch(/resource/);
    });

    test('the sampler records what VMs hold now, per hardware pool and quota row', async () => {
      const db = t.database.db;
      const owner = await createUserWithToken(db, { username: 'owner' });
      const [host] = await db.selectFrom('hosts').select('id').where('pool_id', '=', ids.pool).execute();
      await insertVm(db, {
        poolId: ids.vmPool,
        ownerId: owner.id,
        hostId: host.id,
        vcpus: 3,
        memoryMiB: 1024,
        state: 'running',
      });
      // Stamped two hours ahead, clear of the synthetic history.
      const sampler = new CapacitySampler({ db, store: backend.store, log }, 300, () => (NOW + 7200) * 1000);
      expect(await sampler.sample()).toBeGreaterThanOrEqual(2);
      await backend.store.flush();
      const stamp = Math.floor((NOW + 7200) / 300) * 300;
      const sampled = async (measurement: string, field: string, tags: Record<string, string>) => {
        const [series] = await backend.store.range({
          measurement,
          field,
          tags,
          from: stamp,
          to: stamp + 300,
          step: 300,
          agg: 'last',
        });
        return series.points;
      };
      const pool = { pool: String(ids.pool) };
      expect(await sampled(CAPACITY_MEASUREMENT, 'vcpus_allocated', pool)).toEqual([[stamp, 3]]);
      expect(await sampled(CAPACITY_MEASUREMENT, 'vcpus_capacity', pool)).toEqual([[stamp, 64]]);
      expect(await sampled('herd_quota', 'used_memoryMiB', { ...pool, user: 'total' })).toEqual([
        [stamp, 1024],
      ]);
    });
  }
});
