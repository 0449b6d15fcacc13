import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createLogger } from '../../lib/log.js';
import { type OwnPostgres, startOwnPostgres } from '../../lib/testing/db.js';
import { sharedTempDir } from '../../lib/testing/temp-dir.js';
import { waitFor } from '../../lib/testing/wait.js';
import type { DatabaseHandle } from '../../schema/db.js';
import type { Point } from '../types.js';
import { PostgresStore, type PostgresStoreOptions } from './postgres-store.js';

/**
 * A PostgreSQL of its own, stopped and started under the PostgreSQL metrics store: what cannot be written
 * meanwhile goes to the disk spool (beyond memory, and at stop), and every point arrives once, in order, when
 * PostgreSQL is back — in the same process or in the next one.
 */
const log = createLogger('silent');
let dir: string;
let pg: OwnPostgres;
let handle: DatabaseHandle;

beforeAll(async () => {
  dir = await sharedTempDir('herd-pg-outage-');
  pg = await startOwnPostgres(dir, log);
  handle = pg.handle;
}, 120_000);
afterAll(async () => {
  await pg?.close();
  await rm(dir, { recursive: true, force: true });
});

const T0 = Math.floor(Date.now() / 1000) - 3600;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function store(spoolDir: string, options: Partial<PostgresStoreOptions> = {}): PostgresStore {
  return new PostgresStore({
    db: handle.db,
    batchSize: 20,
    flushMs: 10,
    memoryPoints: 100,
    spillMaxBytes: 50_000_000,
    spoolDir,
    retentionDays: 30,
    log,
    minBackoffMs: 20,
    maxBackoffMs: 200,
    stopTimeoutMs: 200,
    ...options,
  });
}

/**
 * Point n of a run: one of its own in `seq` (counted), and the same instant of `last` overwritten by every point
 * (what is left there shows which write came last).
 */
const points = (run: string, from: number, count: number): Point[] =>
  Array.from({ length: count }, (_, i) => [
    { measurement: 'seq', tags: { run }, fields: { value: from + i }, time: T0 + (from + i) / 1000 },
    { measurement: 'last', tags: { run }, fields: { value: from + i }, time: T0 },
  ]).flat();

async function stored(run: string): Promise<{ count: number; distinct: number; last: number | null }> {
  const { rows } = await handle.pool.query<{ count: string; distinct: string; last: number | null }>(
    `SELECT count(p.value) AS count, count(DISTINCT p.value) AS distinct,
       (SELECT l.value FROM metric_points l JOIN metric_series ls ON ls.id = l.series_id
        WHERE ls.measurement = 'last' AND ls.tags->>'run' = $1) AS last
     FROM metric_points p JOIN metric_series s ON s.id = p.series_id
     WHERE s.measurement = 'seq' AND s.tags->>'run' = $1`,
    [run],
  );
  return { count: Number(rows[0].count), distinct: Number(rows[0].distinct), last: rows[0].last };
}

test('PostgreSQL down mid-run: beyond memory points go to the disk spool; back, every one arrives once, in order', async () => {
  const spoolDir = path.join(dir, 'spool-running');
  // Room for a loaded machine's disk lag; while writes fail everything goes to the spool anyway.
  const s = store(spoolDir, { memoryPoints: 2000 });
  await s.start();
  let n = 0;
  const writer = setInterval(() => {
    s.write(points('running', n, 10));
    n += 10;
  }, 5);
  try {
    await waitFor(() => s.stats().pointsWritten > 100, 10_000, 20);
    await pg.stop();
    await waitFor(() => s.stats().spilledPoints > 500, 20_000, 20);
    const during = s.stats();
    expect(during.writeErrors).toBeGreaterThan(0);
    expect(during.spilledBytes).toBeGreaterThan(0);
    expect(during.droppedPoints).toBe(0);
    await pg.restart();
    await sleep(300);
  } finally {
    clearInterval(writer);
  }
  await s.flush();
  const stats = s.stats();
  await s.stop();
  // Each point of `points` is two: one in seq, one in last.
  expect(stats).toMatchObject({
    pointsWritten: 2 * n,
    droppedPoints: 0,
    bufferedPoints: 0,
    spilledPoints: 0,
  });
  expect(await stored('running')).toEqual({ count: n, distinct: n, last: n - 1 });
  expect(await readdir(spoolDir)).toEqual(['cursor']);
}, 120_000);

test('stopped while PostgreSQL is down: nothing is dropped; the next store delivers the spool first, in order', async () => {
  const spoolDir = path.join(dir, 'spool-restart');
  await pg.stop();
  const first = store(spoolDir, { memoryPoints: 600, batchSize: 100 });
  await first.start();
  const total = 1000;
  // At the pace of a busy collectd fleet, not faster than the disk: beyond memoryPoints waiting to be written the
  // spool drops (counted) rather than grow without bound.
  for (let i = 0; i < total; i += 50) {
    first.write(points('restart', i, 50));
    await sleep(10);
  }
  await waitFor(() => first.stats().writeErrors > 2, 10_000, 20);
  // While writes fail every point goes to disk at once, the batch that was in flight first: a SIGKILL now
  // would lose nothing.
  await waitFor(
    () => first.stats().spilledPoints === 2 * total && first.stats().bufferedPoints === 0,
    5000,
    20,
  );
  await first.stop();
  expect(first.stats()).toMatchObject({ pointsWritten: 0, droppedPoints: 0 });

  await pg.restart();
  const second = store(spoolDir);
  await second.start();
  expect(second.stats().spilledPoints).toBe(2 * total);
  second.write(points('restart', total, 1));
  await second.flush();
  const stats = second.stats();
  await second.stop();
  expect(stats).toMatchObject({ pointsWritten: 2 * (total + 1), droppedPoints: 0, spilledBytes: 0 });
  expect(await stored('restart')).toEqual({ count: total + 1, distinct: total + 1, last: total });
  expect(await readdir(spoolDir)).toEqual(['cursor']);
}, 120_000);
