import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createLogger } from '../../lib/log.js';
import { createTestDatabase, testInflux } from '../../lib/testing/db.js';
import type { Point } from '../types.js';
import { InfluxRollups, ROLLUP_RP } from './influx-rollups.js';
import { InfluxStore } from './influx-store.js';
import type { MetricsStore, RangeQuery, Series } from './metrics-store.js';
import { PostgresRollups } from './postgres-rollups.js';
import { PostgresStore } from './postgres-store.js';
import { graphRange, type RollupSettings, type Rollups, wantsRollups } from './rollups.js';

const log = createLogger('silent');
const settings: RollupSettings = { stepSeconds: 300, retentionDays: 365, rawRetentionHours: 48 };
const HOUR = 3600;
// Three hours of 10 s data, ending an hour ago, on bucket boundaries of every step used below.
const END = Math.floor(Date.now() / 1000 / HOUR) * HOUR - HOUR;
const START = END - 3 * HOUR;

function dataSet(): Point[] {
  const points: Point[] = [];
  for (let t = START; t < END; t += 10) {
    for (const host of ['h1', 'h2']) {
      const load = host === 'h1' ? 1 + Math.sin(t / 600) : 0.5;
      points.push({ measurement: 'load_shortterm', tags: { host }, fields: { value: load }, time: t });
      // Counters at a steady 1000 and 500 bytes/s: rates from bucket means are exact.
      points.push({
        measurement: 'interface_rx',
        tags: { host, instance: 'eth0', type: 'if_octets' },
        fields: { value: 1000 * (t - START) },
        time: t,
      });
      points.push({
        measurement: 'interface_rx',
        tags: { host, instance: 'eth1', type: 'if_octets' },
        fields: { value: 500 * (t - START) },
        time: t,
      });
    }
  }
  return points;
}

type Backend = { store: MetricsStore; rollups: Rollups; db: string; close(): Promise<void> };

const backends: Array<[string, () => Promise<Backend>]> = [
  [
    'influx',
    async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'herd-rollups-'));
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
      const rollups = new InfluxRollups(store, db, settings, log);
      return { store, rollups, db, close: () => rm(dir, { recursive: true, force: true }) };
    },
  ],
  [
    'postgres',
    async () => {
      const handle = await createTestDatabase();
      const store = new PostgresStore({
        db: handle.db,
        batchSize: 5000,
        flushMs: 50,
        memoryPoints: 100_000,
        retentionDays: 100,
        log,
      });
      const rollups = new PostgresRollups(handle.db, settings, log);
      return { store, rollups, db: handle.name, close: () => handle.close() };
    },
  ],
];

function values(series: Series[]): Array<[Record<string, string>, number[]]> {
  return series.map((s) => [s.tags, s.points.map(([, v]) => Math.round(v * 1000) / 1000)]);
}

describe.each(backends)('%s rollups', (kind, make) => {
  let b: Backend;
  beforeAll(async () => {
    b = await make();
    await b.store.start();
    b.store.write(dataSet());
    await b.store.flush();
    // InfluxDB rolls up what is there when it first creates the continuous query; the job does on PostgreSQL.
    await b.rollups.start();
    if (kind === 'postgres') await (b.rollups as PostgresRollups).tick();
  });
  afterAll(async () => {
    await b.rollups.stop();
    await b.store.stop();
    await b.close();
  });

  const gauge: RangeQuery = { measurement: 'load_shortterm', from: START, to: END, step: 900, agg: 'mean' };

  test('bucket means and maxima agree with the raw points', async () => {
    expect(values(await b.rollups.range(gauge))).toEqual(values(await b.store.range(gauge)));
    const peak = { ...gauge, agg: 'max' as const };
    expect(values(await b.rollups.range(peak))).toEqual(values(await b.store.range(peak)));
    const perPool = { ...gauge, groupBy: [], combine: 'sum' as const };
    expect(values(await b.rollups.range(perPool))).toEqual(values(await b.store.range(perPool)));
    // Buckets as wide as the rollups' (one rollup point per series and bucket) combine the same.
    for (const combine of ['sum', 'mean', 'max'] as const) {
      const narrow = {
        ...gauge,
        step: 300,
        agg: combine === 'max' ? ('max' as const) : ('mean' as const),
        groupBy: [],
        combine,
      };
      expect(values(await b.rollups.range(narrow))).toEqual(values(await b.store.range(narrow)));
    }
  });

  test('counter rates come from consecutive bucket means, grouped and combined', async () => {
    const q: RangeQuery = {
      measurement: 'interface_rx',
      from: START + HOUR,
      to: END,
      step: 1800,
      agg: 'mean',
      rate: true,
      groupBy: ['host'],
      combine: 'sum',
    };
    const series = await b.rollups.range(q);
    expect(series.map((s) => s.tags)).toEqual([{ host: 'h1' }, { host: 'h2' }]);
    for (const s of series) {
      expect(s.points.map(([t]) => t)).toEqual([
        START + HOUR,
        START + HOUR + 1800,
        START + 2 * HOUR,
        START + 2 * HOUR + 1800,
      ]);
      for (const [, v] of s.points) expect(v).toBeCloseTo(1500, 6);
    }
  });

  test('long graphs read the rollups, short recent ones the raw points', async () => {
    const now = END + 600;
    expect(wantsRollups(settings, { from: END - 3 * 86_400, to: END, series: 1 }, now)).toBe(true);
    expect(wantsRollups(settings, { from: END - 3600, to: END, series: 1 }, now)).toBe(false);
    expect(wantsRollups(settings, { from: END - 86_400, to: END, series: 100 }, now)).toBe(true);
    const long = await graphRange(b.store, b.rollups, gauge);
    expect(long.source).toBe('rollup');
    expect(values(long.series)).toEqual(values(await b.store.range(gauge)));
    expect((await graphRange(b.store, undefined, gauge)).source).toBe('raw');
  });

  if (kind === 'influx') {
    test('retention policies and the continuous query exist once, however often herd starts', async () => {
      const store = b.store as InfluxStore;
      const again = new InfluxRollups(store, b.db, settings, log);
      await again.start();
      const [policies] = await store.query(`SHOW RETENTION POLICIES`);
      const rows = Object.fromEntries((policies.values ?? []).map((r) => [r[0], r[1]]));
      expect(rows).toEqual({ autogen: '48h0m0s', [ROLLUP_RP]: '8760h0m0s' });
      // The suite's InfluxDB is shared: only this database's queries count.
      const cqs = (await store.query('SHOW CONTINUOUS QUERIES'))
        .filter((s) => s.name === b.db)
        .flatMap((s) => (s.values ?? []).map((r) => r[0]));
      expect(cqs).toEqual(['herd_rollup_300s_autogen']);
    });
  } else {
    test('the job records its progress and re-runs nothing it has done', async () => {
      const rollups = b.rollups as PostgresRollups;
      const done = rollups.doneUntil();
      expect(done).toBeGreaterThanOrEqual(END);
      await rollups.tick();
      expect(rollups.doneUntil()).toBeGreaterThanOrEqual(done);
    });
  }
});
