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
import { authRoutes } from '../auth/auth.routes.js';
import { rightsizingRoutes } from './rightsizing.routes.js';
import { csvField } from './rightsizing.service.js';

/**
 * A known fleet with seven days of figures as herd's graph recorder writes them, one point per 5-minute
 * bucket, written into the real store and rolled up by the real rollups; timestamps relative to now.
 */
const log = createLogger('silent');
const STEP = 300;
const BASE = Math.floor(Date.now() / 1000 / STEP) * STEP;
const WEEK_BUCKETS = (7 * 86_400) / STEP;

interface Signal {
  /** Buckets back from now with figures. */
  buckets: number;
  fields: (i: number) => Record<string, number>;
}

/** `usual` in 32 of 33 buckets, `spike` in the rest (3 %, below what a 95th percentile sees). */
const spiky = (usual: number, spike: number) => (i: number) => (i % 33 === 0 ? spike : usual);

const GUESTS: Record<string, Signal> = {
  // 8 vCPUs, 16 GiB: p95 1.5 vCPUs and 3000 MiB, with spikes to all of it.
  big: {
    buckets: WEEK_BUCKETS,
    fields: (i) => ({ cpu_percent: spiky(150, 800)(i), mem_used: spiky(3000, 15_000)(i) }),
  },
  // 2 vCPUs, 2 GiB, 80 % and 88 % used: right-sized.
  busy: { buckets: WEEK_BUCKETS, fields: () => ({ cpu_percent: 160, mem_used: 1800 }) },
  // 4 vCPUs at 75 %, 4 GiB of which 1000 MiB used: only memory is oversized.
  half: { buckets: WEEK_BUCKETS, fields: () => ({ cpu_percent: 300, mem_used: 1000 }) },
  // Idle, but only a day of figures.
  fresh: { buckets: 288, fields: () => ({ cpu_percent: 5, mem_used: 300 }) },
  // Bob's, in a pool Alice cannot see: 4 vCPUs, 8 GiB, nearly idle.
  bobs: { buckets: WEEK_BUCKETS, fields: () => ({ cpu_percent: 20, mem_used: 700 }) },
};

const HOSTS: Record<string, Signal> = {
  'idle-host': { buckets: WEEK_BUCKETS, fields: () => ({ cpu_busy_cores: 0.2, load5: 0.4 }) },
  'busy-host': { buckets: WEEK_BUCKETS, fields: () => ({ cpu_busy_cores: 4, load5: 4 }) },
};

function figures(measurement: string, host: string, signal: Signal): Point[] {
  const points: Point[] = [];
  for (let i = 0; i < signal.buckets; i++) {
    points.push({ measurement, tags: { host }, fields: signal.fields(i), time: BASE - (i + 1) * STEP + 30 });
  }
  return points;
}

type Backend = { store: MetricsStore; rollups: Rollups; close(): Promise<void> };

const backends: Array<[string, (app: TestApp) => Promise<Backend>]> = [
  [
    'influx',
    async (app) => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'herd-rightsizing-'));
      const { url, db } = testInflux();
      const store = new InfluxStore({
        url,
        db,
        batchSize: 5000,
        flushMs: 50,
        memoryPoints: 100_000,
        spillMaxBytes: 1e7,
        spoolDir: dir,
        log,
      });
      const rollups = new InfluxRollups(store, db, app.deps.config.rollups, log);
      return { store, rollups, close: () => rm(dir, { recursive: true, force: true }) };
    },
  ],
  [
    'postgres',
    async (app) => {
      const { db } = app.database;
      const store = new PostgresStore({
        db,
        batchSize: 5000,
        flushMs: 50,
        memoryPoints: 1e6,
        retentionDays: 30,
        log,
      });
      const rollups = new PostgresRollups(db, app.deps.config.rollups, log);
      return { store, rollups, close: async () => undefined };
    },
  ],
];

describe.each(backends)('right-sizing on %s', (kind, make) => {
  let t: TestApp;
  let b: Backend;
  const ids: Record<string, number> = {};
  const tokens = { admin: '', alice: '', bob: '' };

  beforeAll(async () => {
    t = await createTestApp({ routes: [authRoutes, rightsizingRoutes] });
    const db = t.database.db;
    ids.rack = await createPool(db, { name: 'rack' });
    ids.team = await createPool(db, { name: 'team', kind: 'vm', parentId: ids.rack });
    ids.sub = await createPool(db, { name: 'team, "sub"', kind: 'vm', parentId: ids.team });
    ids.other = await createPool(db, { name: 'other', kind: 'vm', parentId: ids.rack });
    const host = await insertHost(db, {
      poolId: ids.rack,
      cpus: 32,
      memoryMiB: 131_072,
      hostname: 'busy-host',
    });
    ids['busy-host'] = host;
    ids['idle-host'] = await insertHost(db, {
      poolId: ids.rack,
      cpus: 8,
      memoryMiB: 32_768,
      hostname: 'idle-host',
    });
    ids['new-host'] = await insertHost(db, {
      poolId: ids.rack,
      cpus: 8,
      memoryMiB: 32_768,
      hostname: 'new-host',
    });
    // busy-host: 4 of 32 CPUs is 12.5 %, above the 10 % an idle host stays under.
    const alice = await createUserWithToken(db, { username: 'alice' });
    const bob = await createUserWithToken(db, { username: 'bob' });
    tokens.alice = alice.token;
    tokens.bob = bob.token;
    tokens.admin = (await createUserWithToken(db, { username: 'root', superAdmin: true })).token;
    await grantRole(db, ids.team, alice.id, 'user');
    await grantRole(db, ids.other, bob.id, 'user');
    const vm = async (name: string, poolId: number, ownerId: number, vcpus: number, memoryMiB: number) => {
      ids[name] = await insertVm(db, {
        name,
        poolId,
        ownerId,
        vcpus,
        memoryMiB,
        hostId: host,
        state: 'running',
      });
    };
    await vm('big', ids.team, alice.id, 8, 16_384);
    await vm('busy', ids.team, alice.id, 2, 2048);
    await vm('fresh', ids.team, alice.id, 4, 8192);
    await vm('half', ids.sub, alice.id, 4, 4096);
    await vm('bobs', ids.other, bob.id, 4, 8192);
    // A stopped VM holds nothing: never listed, even without figures.
    await insertVm(db, {
      name: 'stopped',
      poolId: ids.team,
      ownerId: alice.id,
      vcpus: 16,
      memoryMiB: 65_536,
    });
    await db
      .insertInto('quotas')
      .values({ pool_id: ids.team, user_id: alice.id, vcpus: 20, memory_mib: 32_768 })
      .execute();

    const uuids = await db.selectFrom('vms').select(['name', 'uuid']).execute();
    const uuid = new Map(uuids.map((r) => [r.name, r.uuid]));
    b = await make(t);
    await b.store.start();
    for (const [name, signal] of Object.entries(GUESTS))
      b.store.write(figures('herd_guest', uuid.get(name)!, signal));
    for (const [name, signal] of Object.entries(HOSTS)) b.store.write(figures('herd_host', name, signal));
    await b.store.flush();
    // InfluxDB rolls up what is there when it creates its continuous query; PostgreSQL's job is run here.
    await b.rollups.start();
    if (kind === 'postgres') await b.rollups.refresh(BASE - 8 * 86_400, BASE);
    t.deps.store = b.store;
    t.deps.rollups = b.rollups;
  }, 120_000);
  afterAll(async () => {
    await b?.rollups.stop();
    await b?.store.stop();
    await b?.close();
    await t?.close();
  });

  const get = (token: string, query = '', headers: Record<string, string> = {}) =>
    t.app.inject({
      method: 'GET',
      url: `/api/v1/rightsizing${query}`,
      headers: { ...authHeader(token), ...headers },
    });

  test('lists the oversized VMs with their suggested size, what it frees and the quota effect', async () => {
    const res = await get(tokens.alice);
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json();
    expect(body.items.map((i: { name: string; status: string }) => [i.name, i.status])).toEqual([
      ['big', 'oversized'],
      ['half', 'oversized'],
      ['fresh', 'insufficient_data'],
    ]);
    expect(body.total).toBe(3);
    const [big, half, fresh] = body.items;
    expect(big).toMatchObject({
      vmId: ids.big,
      poolId: ids.team,
      poolName: 'team',
      owner: 'alice',
      holds: { vcpus: 8, memoryMiB: 16_384 },
      // The spikes (3 % of the buckets) are above the 95th percentile.
      p95: { cpuPercent: 18.75, vcpus: 1.5, memoryMiB: 3000, memoryPercent: 18.31 },
      // 1.5 × 1.2 = 1.8 → 2 vCPUs; 3000 × 1.2 = 3600 → 3840 MiB (256 MiB steps).
      suggested: { vcpus: 2, memoryMiB: 3840 },
      frees: { vcpus: 6, memoryMiB: 12_544 },
      quota: {
        limitPoolId: ids.team,
        // Alice's running VMs under the quota: 8 + 2 + 4 + 4 vCPUs, 16384 + 2048 + 8192 + 4096 MiB.
        vcpus: { used: 18, after: 12, limit: 20 },
        memoryMiB: { used: 30_720, after: 18_176, limit: 32_768 },
      },
    });
    expect(big.coverage).toBeGreaterThan(0.99);
    expect(half).toMatchObject({
      poolId: ids.sub,
      p95: { cpuPercent: 75, memoryMiB: 1000 },
      // CPU at 75 % stays; 1000 × 1.2 = 1200 → 1280 MiB.
      suggested: { vcpus: 4, memoryMiB: 1280 },
      frees: { vcpus: 0, memoryMiB: 2816 },
      // The quota of the parent pool applies to the sub-pool's VM.
      quota: {
        limitPoolId: ids.team,
        vcpus: { used: 18, after: 18, limit: 20 },
        memoryMiB: { used: 30_720, after: 27_904, limit: 32_768 },
      },
    });
    expect(fresh).toMatchObject({ vmId: ids.fresh, p95: null, suggested: null, frees: null, quota: null });
    expect(fresh.coverage).toBeGreaterThan(0.1);
    expect(fresh.coverage).toBeLessThan(0.2);
    // Alice sees no hardware pool: no hosts.
    expect(body.hosts).toEqual([]);
    expect(body.window).toMatchObject({ days: 7, percentile: 95 });
    expect(body.window.to - body.window.from).toBeGreaterThan(6.9 * 86_400);
  });

  test('a higher threshold, more headroom, a shorter window', async () => {
    // At 80 %, busy's CPU (80 %) still is not under it; its memory (88 %) is not either.
    const at80 = (await get(tokens.alice, '?threshold=80')).json();
    expect(at80.items.map((i: { name: string }) => i.name)).toEqual(['big', 'half', 'fresh']);
    const at90 = (await get(tokens.alice, '?threshold=90&headroom=0')).json();
    const busy = at90.items.find((i: { name: string }) => i.name === 'busy');
    // 1.6 vCPUs → 2 (nothing freed); 1800 MiB → 2048 (nothing freed): right-sized even at 90 %.
    expect(busy).toBeUndefined();
    const big = at90.items.find((i: { name: string }) => i.name === 'big');
    expect(big.suggested).toEqual({ vcpus: 2, memoryMiB: 3072 });
    // Over the last day, fresh has figures in every bucket: idle, down to the floors (1 vCPU, 512 MiB).
    const day = (await get(tokens.alice, '?days=1')).json();
    const fresh = day.items.find((i: { name: string }) => i.name === 'fresh');
    expect(fresh).toMatchObject({ status: 'oversized', suggested: { vcpus: 1, memoryMiB: 512 } });
    expect(fresh.frees).toEqual({ vcpus: 3, memoryMiB: 7680 });
  });

  test('visibility: only VMs the caller sees; a pool it cannot see is a 404', async () => {
    const admin = (await get(tokens.admin)).json();
    expect(admin.items.map((i: { name: string }) => i.name).sort()).toEqual(['big', 'bobs', 'fresh', 'half']);
    const bob = (await get(tokens.bob)).json();
    expect(bob.items.map((i: { name: string }) => i.name)).toEqual(['bobs']);
    expect((await get(tokens.alice, `?poolId=${ids.other}`)).statusCode).toBe(404);
    expect((await get(tokens.alice, '?poolId=2147483647')).statusCode).toBe(404);
    const sub = (await get(tokens.alice, `?poolId=${ids.sub}`)).json();
    expect(sub.items.map((i: { name: string }) => i.name)).toEqual(['half']);
    // Bob's VM has no quota: unlimited, used from its pool.
    const bobs = bob.items[0];
    expect(bobs.quota).toEqual({
      limitPoolId: null,
      vcpus: { used: 4, after: 1, limit: null },
      memoryMiB: { used: 8192, after: 1024, limit: null },
    });
  });

  test('idle hosts, and hosts with too little data', async () => {
    const { hosts } = (await get(tokens.admin, `?poolId=${ids.rack}`)).json();
    expect(hosts).toEqual([
      expect.objectContaining({
        hostId: ids['idle-host'],
        hostname: 'idle-host',
        status: 'idle',
        p95: { cpuPercent: 2.5, loadPerCpu: 0.05 },
      }),
      expect.objectContaining({
        hostId: ids['new-host'],
        status: 'insufficient_data',
        p95: null,
        coverage: 0,
      }),
    ]);
    // busy-host (12.5 % busy) is idle under a 20 % threshold once its load (0.125 per CPU) is allowed too.
    const loose = (
      await get(tokens.admin, `?poolId=${ids.rack}&hostCpuThreshold=20&hostLoadThreshold=0.2`)
    ).json();
    expect(loose.hosts.map((h: { hostname: string }) => h.hostname)).toEqual([
      'busy-host',
      'idle-host',
      'new-host',
    ]);
  });

  test('CSV: a header row, one line per VM, quoted where needed', async () => {
    for (const res of [
      await get(tokens.alice, '?format=csv'),
      await get(tokens.alice, '', { accept: 'text/csv' }),
    ]) {
      expect(res.statusCode, res.body).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/csv/);
      expect(res.headers['content-disposition']).toContain('rightsizing.csv');
      const lines = res.body.split('\r\n');
      expect(lines[0]).toBe(
        'vm_id,vm,pool,owner,status,vcpus,memory_mib,coverage,p95_cpu_percent,p95_memory_mib,p95_memory_percent,' +
          'suggested_vcpus,suggested_memory_mib,frees_vcpus,frees_memory_mib,quota_pool_id,quota_vcpus_used,' +
          'quota_vcpus_after,quota_vcpus_limit,quota_memory_mib_used,quota_memory_mib_after,quota_memory_mib_limit',
      );
      expect(lines).toHaveLength(5); // header, three VMs, the empty string after the last CRLF
      expect(lines[4]).toBe('');
      const cells = (line: string) => line.split(',');
      expect(cells(lines[1]).slice(0, 5)).toEqual([String(ids.big), 'big', 'team', 'alice', 'oversized']);
      expect(cells(lines[1]).slice(8)).toEqual(
        [
          '18.75',
          '3000',
          '18.31',
          '2',
          '3840',
          '6',
          '12544',
          ids.team,
          '18',
          '12',
          '20',
          '30720',
          '18176',
          '32768',
        ].map(String),
      );
      // The sub-pool's name holds a comma and quotes.
      expect(lines[2]).toContain(`,half,"team, ""sub""",alice,oversized,`);
      expect(lines[3]).toMatch(
        new RegExp(`^${ids.fresh},fresh,team,alice,insufficient_data,4,8192,0\\.1\\d+,,,,,,,,,,,,,,$`),
      );
    }
  });

  test('bad input is a 400 naming the field', async () => {
    for (const [query, field] of [
      ['?days=0', 'days'],
      ['?days=91', 'days'],
      ['?threshold=0', 'threshold'],
      ['?threshold=abc', 'threshold'],
      ['?format=xml', 'format'],
      ['?poolId=-1', 'poolId'],
    ]) {
      const res = await get(tokens.alice, query);
      expect(res.statusCode, `${query}: ${res.body}`).toBe(400);
      expect(res.body).toContain(field);
    }
  });
});

test('CSV fields: quoted when needed, formulas defused', () => {
  expect(csvField('plain')).toBe('plain');
  expect(csvField('a,b')).toBe('"a,b"');
  expect(csvField('say "hi"')).toBe('"say ""hi"""');
  expect(csvField('two\nlines')).toBe('"two\nlines"');
  expect(csvField('=cmd()')).toBe("'=cmd()");
  expect(csvField(-3)).toBe('-3');
  expect(csvField(null)).toBe('');
});
