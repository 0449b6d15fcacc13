import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createLogger } from '../../lib/log.js';
import { createTestDatabase, testInflux } from '../../lib/testing/db.js';
import type { DatabaseHandle } from '../../schema/db.js';
import type { Point } from '../types.js';
import { InfluxStore } from './influx-store.js';
import type { MetricsStore, RangeQuery, Series, TagFilter } from './metrics-store.js';
import { PostgresStore } from './postgres-store.js';
import { RATE_LOOKBACK_SECONDS } from './range-query.js';

// One data set, one list of questions, both stores: each answer must equal the reference below (a
// direct reading of RangeQuery's documented semantics), hence the stores equal each other.

const T0 = 1_699_999_980; // a multiple of 60 and 120: buckets start here
const log = createLogger('silent');

function dataSet(): Point[][] {
  const points: Point[] = [];
  const hosts = ['h1', 'h2'];
  for (let i = 0; i < 18; i++) {
    hosts.forEach((host, h) => {
      ['user', 'system'].forEach((ti, k) => {
        points.push({
          measurement: 'cpu_value',
          tags: { host, instance: '0', type: 'percent', type_instance: ti },
          fields: { value: ((i * 7 + h * 3 + k * 5) % 23) + 0.5 },
          time: T0 + i * 10 + 0.000123 * h,
        });
      });
    });
    if (i % 2 === 0) {
      points.push({
        measurement: 'cpu_value',
        tags: { host: 'h2', instance: '1', type: 'percent', type_instance: 'user' },
        fields: { value: i * 1.25 },
        time: T0 + i * 10 + 3,
      });
    }
    points.push({
      measurement: 'cpu_value',
      tags: { host: 'h3', instance: '', type: 'percent', type_instance: 'idle' },
      fields: { value: 100 - i },
      time: T0 + i * 10 + 1,
    });
    points.push({
      measurement: 'load',
      tags: { host: 'h1', type: 'load' },
      fields: { shortterm: i / 10, midterm: i / 20, longterm: i / 40 },
      time: T0 + i * 10,
    });
  }
  // Counters: steady, growing, and one reset (eth0 of h1 restarts from a small value at i = 9).
  const counters: Array<{ host: string; instance: string; step: (i: number) => number; reset?: number }> = [
    { host: 'h1', instance: 'eth0', step: (i) => 1000 + i * 10, reset: 9 },
    { host: 'h1', instance: 'eth1', step: () => 500 },
    { host: 'h2', instance: 'eth0', step: (i) => 250 * (i % 3) },
  ];
  for (const c of counters) {
    let v = 1e6;
    for (let i = 0; i < 24; i++) {
      v = i === c.reset ? 50 : v + c.step(i);
      points.push({
        measurement: 'interface_rx',
        tags: { host: c.host, instance: c.instance, type: 'if_octets', type_instance: '' },
        fields: { value: v },
        time: T0 - 60 + i * 10 + (c.host === 'h2' ? 2.5 : 0),
      });
    }
  }
  // The same series and time written again, in a later write and within one write: the last wins.
  const again = (value: number): Point => ({
    measurement: 'cpu_value',
    tags: { host: 'h1', instance: '0', type: 'percent', type_instance: 'user' },
    fields: { value },
    time: T0 + 170,
  });
  return [points, [again(99), again(42)]];
}

// ---- the reference ----

interface Row {
  measurement: string;
  tags: Record<string, string>;
  field: string;
  us: number;
  value: number;
}

function rows(writes: Point[][]): Row[] {
  const byKey = new Map<string, Row>();
  for (const p of writes.flat()) {
    const tags = Object.fromEntries(
      Object.entries(p.tags)
        .filter(([, v]) => v !== '')
        .sort(),
    );
    for (const [field, value] of Object.entries(p.fields)) {
      const us = Math.round(p.time * 1e6);
      byKey.set(JSON.stringify([p.measurement, tags, field, us]), {
        measurement: p.measurement,
        tags,
        field,
        us,
        value,
      });
    }
  }
  return [...byKey.values()];
}

function matches(tags: Record<string, string>, filter: TagFilter = {}): boolean {
  return Object.entries(filter).every(([k, want]) =>
    (typeof want === 'string' ? [want] : want).includes(tags[k] ?? ''),
  );
}

const reduce = {
  mean: (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length,
  sum: (v: number[]) => v.reduce((a, b) => a + b, 0),
  max: (v: number[]) => Math.max(...v),
  min: (v: number[]) => Math.min(...v),
  last: (v: number[]) => v[v.length - 1],
};

function reference(all: Row[], q: RangeQuery): Series[] {
  const stepUs = Math.round(q.step * 1e6);
  const fromUs = Math.floor(Math.round(q.from * 1e6) / stepUs) * stepUs;
  const toUs = Math.round(q.to * 1e6);
  const lookbackUs = fromUs - Math.max(stepUs, RATE_LOOKBACK_SECONDS * 1e6);
  const series = new Map<string, { tags: Record<string, string>; rows: Row[] }>();
  for (const r of all) {
    if (r.measurement !== q.measurement || r.field !== (q.field ?? 'value') || !matches(r.tags, q.tags))
      continue;
    const key = JSON.stringify(r.tags);
    if (!series.has(key)) series.set(key, { tags: r.tags, rows: [] });
    series.get(key)!.rows.push(r);
  }
  const perSeries: Array<{ tags: Record<string, string>; buckets: Map<number, number> }> = [];
  for (const { tags, rows: rs } of series.values()) {
    rs.sort((a, b) => a.us - b.us);
    let values: Array<[number, number]>;
    if (q.rate) {
      const window = rs.filter((r) => r.us >= lookbackUs && r.us < toUs);
      values = [];
      for (let i = 1; i < window.length; i++) {
        const rate = (window[i].value - window[i - 1].value) / ((window[i].us - window[i - 1].us) / 1e6);
        if (window[i].us >= fromUs && rate >= 0) values.push([window[i].us, rate]);
      }
    } else {
      values = rs.filter((r) => r.us >= fromUs && r.us < toUs).map((r) => [r.us, r.value]);
    }
    const grouped = new Map<number, number[]>();
    for (const [us, v] of values) {
      const bucket = Math.floor(us / stepUs) * stepUs;
      grouped.set(bucket, [...(grouped.get(bucket) ?? []), v]);
    }
    const buckets = new Map([...grouped].map(([b, vs]) => [b, reduce[q.agg](vs)]));
    if (buckets.size) perSeries.push({ tags, buckets });
  }
  let out: Array<{ tags: Record<string, string>; buckets: Map<number, number> }> = perSeries;
  if (q.groupBy) {
    const combine = q.combine ?? (q.agg === 'last' ? 'sum' : q.agg);
    const groups = new Map<string, { tags: Record<string, string>; values: Map<number, number[]> }>();
    for (const s of perSeries) {
      const tags = Object.fromEntries(
        q.groupBy
          .filter((k) => s.tags[k] !== undefined)
          .sort()
          .map((k) => [k, s.tags[k]]),
      );
      const key = JSON.stringify(tags);
      if (!groups.has(key)) groups.set(key, { tags, values: new Map() });
      const g = groups.get(key)!;
      for (const [b, v] of s.buckets) g.values.set(b, [...(g.values.get(b) ?? []), v]);
    }
    out = [...groups.values()].map((g) => ({
      tags: g.tags,
      buckets: new Map([...g.values].map(([b, vs]) => [b, reduce[combine](vs)])),
    }));
  }
  return out
    .map((s) => ({
      tags: s.tags,
      points: [...s.buckets].sort((a, b) => a[0] - b[0]).map(([b, v]) => [b / 1e6, v] as [number, number]),
    }))
    .sort((a, b) =>
      JSON.stringify(Object.entries(a.tags)) < JSON.stringify(Object.entries(b.tags)) ? -1 : 1,
    );
}

function expectClose(actual: Series[], expected: Series[]): void {
  expect(actual.map((s) => ({ tags: s.tags, times: s.points.map((p) => p[0]) }))).toEqual(
    expected.map((s) => ({ tags: s.tags, times: s.points.map((p) => p[0]) })),
  );
  actual.forEach((s, i) => {
    s.points.forEach(([, v], j) => {
      const want = expected[i].points[j][1];
      expect(Math.abs(v - want)).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(want)));
    });
  });
}

const questions: Array<[string, RangeQuery]> = [
  ['mean per series', { measurement: 'cpu_value', from: T0, to: T0 + 180, step: 60, agg: 'mean' }],
  [
    'max, unaligned range, one host',
    { measurement: 'cpu_value', tags: { host: 'h1' }, from: T0 + 15, to: T0 + 175, step: 30, agg: 'max' },
  ],
  [
    'min over a list of tag values',
    {
      measurement: 'cpu_value',
      tags: { type_instance: ['user', 'idle'] },
      from: T0,
      to: T0 + 180,
      step: 60,
      agg: 'min',
    },
  ],
  [
    'sum grouped by host',
    { measurement: 'cpu_value', from: T0, to: T0 + 180, step: 120, agg: 'sum', groupBy: ['host'] },
  ],
  [
    'last grouped by two tags',
    {
      measurement: 'cpu_value',
      from: T0,
      to: T0 + 180,
      step: 60,
      agg: 'last',
      groupBy: ['host', 'type_instance'],
    },
  ],
  [
    'mean of everything, max across series',
    { measurement: 'cpu_value', from: T0, to: T0 + 180, step: 60, agg: 'mean', groupBy: [], combine: 'max' },
  ],
  [
    'grouped by a tag some series lack',
    { measurement: 'cpu_value', from: T0, to: T0 + 180, step: 90, agg: 'mean', groupBy: ['instance'] },
  ],
  [
    'series without a tag',
    { measurement: 'cpu_value', tags: { instance: '' }, from: T0, to: T0 + 180, step: 60, agg: 'mean' },
  ],
  [
    'counter rate with a reset',
    { measurement: 'interface_rx', from: T0, to: T0 + 180, step: 60, agg: 'mean', rate: true },
  ],
  [
    'rate, max, summed per host',
    {
      measurement: 'interface_rx',
      from: T0,
      to: T0 + 180,
      step: 30,
      agg: 'max',
      rate: true,
      groupBy: ['host'],
      combine: 'sum',
    },
  ],
  [
    'rate from an unaligned start, grouped',
    {
      measurement: 'interface_rx',
      from: T0 + 95,
      to: T0 + 175,
      step: 60,
      agg: 'mean',
      rate: true,
      groupBy: [],
    },
  ],
  [
    'rate starting mid-data (predecessor before from)',
    {
      measurement: 'interface_rx',
      tags: { instance: 'eth1' },
      from: T0 + 50,
      to: T0 + 120,
      step: 10,
      agg: 'last',
      rate: true,
    },
  ],
  [
    'another field (join mode)',
    { measurement: 'load', field: 'midterm', from: T0, to: T0 + 180, step: 60, agg: 'sum' },
  ],
  ['nothing there', { measurement: 'nope', from: T0, to: T0 + 180, step: 60, agg: 'mean' }],
];

const stores: Array<[string, () => Promise<{ store: MetricsStore; close(): Promise<void> }>]> = [
  [
    'influx',
    async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'herd-store-conformance-'));
      const { url, db } = testInflux();
      const store = new InfluxStore({
        url,
        db,
        batchSize: 200,
        flushMs: 50,
        memoryPoints: 100_000,
        spillMaxBytes: 10_000_000,
        spoolDir: dir,
        log,
      });
      return { store, close: () => rm(dir, { recursive: true, force: true }) };
    },
  ],
  [
    'postgres',
    async () => {
      const handle: DatabaseHandle = await createTestDatabase();
      const store = new PostgresStore({
        db: handle.db,
        batchSize: 200,
        flushMs: 50,
        memoryPoints: 100_000,
        retentionDays: 100_000,
        log,
      });
      return { store, close: () => handle.close() };
    },
  ],
];

describe.each(stores)('%s store answers like the reference', (_name, make) => {
  let store: MetricsStore;
  let close: () => Promise<void>;
  const writes = dataSet();
  const all = rows(writes);

  beforeAll(async () => {
    ({ store, close } = await make());
    await store.start();
    for (const w of writes) {
      store.write(w);
      await store.flush();
    }
  });
  afterAll(async () => {
    await store.stop();
    await close();
  });

  test('every point was written', () => {
    expect(store.stats()).toMatchObject({ pointsWritten: writes.flat().length, droppedPoints: 0 });
  });

  test.each(questions)('range: %s', async (_q, q) => {
    expectClose(await store.range(q), reference(all, q));
  });

  test('latest value per series', async () => {
    const latest = await store.latest({ measurement: 'cpu_value', tags: { host: 'h1' } });
    expect(latest).toEqual([
      {
        measurement: 'cpu_value',
        field: 'value',
        tags: { host: 'h1', instance: '0', type: 'percent', type_instance: 'system' },
        time: T0 + 170,
        value: ((17 * 7 + 5) % 23) + 0.5,
      },
      {
        measurement: 'cpu_value',
        field: 'value',
        tags: { host: 'h1', instance: '0', type: 'percent', type_instance: 'user' },
        time: T0 + 170,
        value: 42,
      },
    ]);
    const rx = await store.latest({ measurement: 'interface_rx', tags: { instance: ['eth0', 'eth1'] } });
    expect(rx.map((r) => [r.tags.host, r.tags.instance, r.time])).toEqual([
      ['h1', 'eth0', T0 - 60 + 230],
      ['h1', 'eth1', T0 - 60 + 230],
      ['h2', 'eth0', T0 - 60 + 232.5],
    ]);
    expect(await store.latest({ measurement: 'load', field: 'longterm' })).toEqual([
      {
        measurement: 'load',
        field: 'longterm',
        tags: { host: 'h1', type: 'load' },
        time: T0 + 170,
        value: 17 / 40,
      },
    ]);
    expect(await store.latest({ measurement: 'cpu_value', since: T0 + 1000 })).toEqual([]);
    expect(
      await store.latest({ measurement: 'cpu_value', tags: { host: 'h2', instance: '1' }, since: T0 + 150 }),
    ).toMatchObject([{ time: T0 + 163, value: 16 * 1.25 }]);
  });

  test('series list', async () => {
    expect(await store.listSeries({ measurement: 'interface_rx', tags: { host: 'h1' } })).toEqual([
      { measurement: 'interface_rx', tags: { host: 'h1', instance: 'eth0', type: 'if_octets' } },
      { measurement: 'interface_rx', tags: { host: 'h1', instance: 'eth1', type: 'if_octets' } },
    ]);
    const everything = await store.listSeries();
    expect(everything.map((s) => s.measurement)).toEqual([
      ...Array(6).fill('cpu_value'),
      ...Array(3).fill('interface_rx'),
      'load',
    ]);
    expect(everything[0]).toEqual({
      measurement: 'cpu_value',
      tags: { host: 'h1', instance: '0', type: 'percent', type_instance: 'system' },
    });
  });

  test('bad queries are refused with the field named', async () => {
    await expect(
      store.range({ measurement: 'cpu_value', from: T0, to: T0, step: 60, agg: 'mean' }),
    ).rejects.toThrow(/to must be after from/);
    await expect(
      store.range({ measurement: 'cpu_value', from: T0, to: T0 + 60, step: 0, agg: 'mean' }),
    ).rejects.toThrow(/step/);
    await expect(
      store.range({ measurement: 'cpu_value', from: T0, to: T0 + 60, step: 1, agg: 'median' as 'mean' }),
    ).rejects.toThrow(/agg/);
    await expect(
      store.range({ measurement: 'cpu_value', from: 0, to: T0, step: 1, agg: 'mean' }),
    ).rejects.toThrow(/buckets/);
  });
});
