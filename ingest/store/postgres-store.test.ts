import { afterAll, beforeAll, expect, test } from 'vitest';
import { freePort } from '../../lib/embedded-postgres.js';
import { createLogger } from '../../lib/log.js';
import { createRegistry } from '../../lib/metrics.js';
import { capturingLogger } from '../../lib/testing/capture-log.js';
import { createTestDatabase } from '../../lib/testing/db.js';
import { connect, type DatabaseHandle } from '../../schema/db.js';
import type { Point } from '../types.js';
import { PostgresStore, type PostgresStoreOptions } from './postgres-store.js';

let handle: DatabaseHandle;
const log = createLogger('silent');

beforeAll(async () => {
  handle = await createTestDatabase();
});
afterAll(async () => {
  await handle.close();
});

function store(options: Partial<PostgresStoreOptions> = {}): PostgresStore {
  return new PostgresStore({
    db: handle.db,
    batchSize: 100,
    flushMs: 20,
    memoryPoints: 10_000,
    retentionDays: 30,
    log,
    ...options,
  });
}

const DAY = 86_400;
/** Within every store's retention here (30 days), whatever the date. */
const T0 = Math.floor(Date.now() / 1000) - 3600;

test('retention deletes raw points once they are older than the configured days, in chunks', async () => {
  const s = store({ pruneChunk: 7 });
  const now = Date.now();
  const nowS = now / 1000;
  const at = (t: number, v: number): Point => ({
    measurement: 'retained',
    tags: { host: 'h' },
    fields: { value: v },
    time: t,
  });
  s.write([
    ...Array.from({ length: 20 }, (_, i) => at(nowS - 21 * DAY + i, i)),
    at(nowS - 9 * DAY, 100),
    at(nowS - 10, 200),
  ]);
  await s.start();
  await s.flush();
  expect(s.stats()).toMatchObject({ pointsWritten: 22, droppedPoints: 0 });
  expect(await s.prune(now)).toBe(0);
  // Ten days on, the first twenty are past the 30 days.
  const later = now + 10 * DAY * 1000;
  expect(await s.prune(later)).toBe(20);
  expect(await s.prune(later)).toBe(0);
  const left = await s.range({
    measurement: 'retained',
    from: nowS - 50 * DAY,
    to: nowS + 1,
    step: DAY,
    agg: 'sum',
  });
  expect(left.flatMap((x) => x.points.map((p) => p[1]))).toEqual([100, 200]);
  await s.stop();
});

test('a point already older than the retention is dropped as too_old, and its host logged once with its clock offset', async () => {
  const { log, lines } = capturingLogger();
  const registry = createRegistry();
  const s = store({ log, registry });
  await s.start();
  const nowS = Date.now() / 1000;
  const at = (host: string, t: number): Point => ({
    measurement: 'aged',
    tags: { host },
    fields: { value: 1 },
    time: t,
  });
  s.write([at('skewed', nowS - 45 * DAY), at('skewed', nowS - 45 * DAY + 10), at('fine', nowS - 29 * DAY)]);
  s.write([at('skewed', nowS - 45 * DAY + 20)]);
  await s.flush();
  await s.stop();
  expect(s.stats()).toMatchObject({ pointsWritten: 1, droppedPoints: 3, dropped: { too_old: 3 } });
  expect(await registry.metrics()).toContain(
    'herd_metrics_dropped_points_total{store="postgres",reason="too_old"} 3',
  );
  const warned = lines.map((l) => JSON.parse(l)).filter((e) => e.clockOffsetSeconds !== undefined);
  expect(warned).toHaveLength(1);
  expect(warned[0]).toMatchObject({ host: 'skewed', retentionHours: 30 * 24 });
  expect(Math.abs(warned[0].clockOffsetSeconds + 45 * DAY)).toBeLessThan(60);
  expect(warned[0].msg).toContain('45 days behind');
});

test('two stores creating the same new series at once both write, into one series', async () => {
  const a = store();
  const b = store();
  await Promise.all([a.start(), b.start()]);
  const points = (offset: number): Point[] =>
    Array.from({ length: 50 }, (_, i) => ({
      measurement: 'raced',
      tags: { host: `h${i % 10}`, type_instance: '' },
      fields: { value: i, other: -i },
      time: T0 + i + offset,
    }));
  a.write(points(0));
  b.write(points(1000));
  await Promise.all([a.flush(), b.flush()]);
  expect(a.stats()).toMatchObject({ pointsWritten: 50, droppedPoints: 0 });
  expect(b.stats()).toMatchObject({ pointsWritten: 50, droppedPoints: 0 });
  const { rows } = await handle.pool.query(
    `SELECT count(*)::int AS series, (SELECT count(*)::int FROM metric_points p JOIN metric_series s ON s.id = p.series_id WHERE s.measurement = 'raced') AS points
     FROM metric_series WHERE measurement = 'raced'`,
  );
  expect(rows[0]).toEqual({ series: 20, points: 200 });
  await Promise.all([a.stop(), b.stop()]);
});

test('while PostgreSQL is unreachable: retries, memory bound drops are counted, stop counts what is left', async () => {
  const unreachable = connect(`postgres://herd:x@127.0.0.1:${await freePort()}/nowhere`, { max: 1 });
  const s = new PostgresStore({
    db: unreachable.db,
    batchSize: 10,
    flushMs: 10,
    memoryPoints: 100,
    retentionDays: 30,
    log,
    minBackoffMs: 10,
    maxBackoffMs: 50,
    stopTimeoutMs: 100,
  });
  await s.start();
  s.write(
    Array.from({ length: 150 }, (_, i) => ({
      measurement: 'm',
      tags: {},
      fields: { value: i },
      time: T0 + i,
    })),
  );
  await new Promise((r) => setTimeout(r, 300));
  const during = s.stats();
  expect(during.writeErrors).toBeGreaterThan(1);
  expect(during).toMatchObject({ bufferedPoints: 100, pointsWritten: 0, dropped: { memory: 50 } });
  expect(await s.ping()).toBe(false);
  await s.stop();
  expect(s.stats()).toMatchObject({
    bufferedPoints: 0,
    droppedPoints: 150,
    dropped: { memory: 50, stopped: 100 },
  });
  await unreachable.close();
});

test('write-path figures reach the Prometheus registry', async () => {
  const registry = createRegistry();
  const s = store({ registry });
  await s.start();
  s.write([
    { measurement: 'p', tags: {}, fields: { value: 1 }, time: T0 },
    { measurement: '', tags: {}, fields: { value: 1 }, time: T0 },
  ]);
  await s.flush();
  await s.stop();
  const text = await registry.metrics();
  expect(text).toContain('herd_metrics_points_written_total{store="postgres"} 1');
  expect(text).toContain('herd_metrics_dropped_points_total{store="postgres",reason="invalid"} 1');
  expect(text).toContain('herd_metrics_buffered_points{store="postgres"} 0');
  expect(text).toMatch(/herd_metrics_write_duration_seconds_count\{store="postgres"\} 1/);
});
