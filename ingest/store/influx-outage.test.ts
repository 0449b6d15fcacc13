import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createLogger } from '../../lib/log.js';
import { createInflux, type InfluxServer } from '../../lib/testing/influxd.js';
import type { Point } from '../types.js';
import { InfluxStore, type InfluxStoreOptions } from './influx-store.js';
import { eventually, influxQuery, type RecordingProxy, recordingProxy } from './influx-test-proxy.js';

// An influxd of our own, stopped and started by these tests; a recording proxy in front of it shows
// the order in which points were accepted.
let influx: InfluxServer;
let proxy: RecordingProxy;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'herd-influx-outage-'));
  influx = await createInflux(path.join(dir, 'influxd'));
  await influx.start();
  proxy = await recordingProxy(influx.url);
});
afterAll(async () => {
  await proxy?.close();
  await influx?.stop();
  await rm(dir, { recursive: true, force: true });
});

const T0 = 1_700_000_000;
const seqPoint = (n: number): Point => ({
  measurement: 'seq',
  tags: { host: 'h1' },
  fields: { value: n },
  time: T0 + n / 1000,
});

function store(db: string, spoolDir: string, options: Partial<InfluxStoreOptions> = {}): InfluxStore {
  return new InfluxStore({
    url: proxy.url,
    db,
    batchSize: 50,
    flushMs: 20,
    memoryPoints: 200,
    spillMaxBytes: 50_000_000,
    spoolDir,
    log: createLogger('silent'),
    minBackoffMs: 20,
    maxBackoffMs: 200,
    ...options,
  });
}

/** The values the proxy saw InfluxDB accept, in order. */
function acceptedValues(): number[] {
  return proxy.acceptedLines().map((l) => Number(/ value=([^ ]+) /.exec(l)![1]));
}

async function countIn(db: string): Promise<{ count: number; distinct: number }> {
  const r = await influxQuery(influx.url, db, 'SELECT count(value), count(distinct(value)) FROM seq');
  const row = r.series?.[0]?.values[0] ?? [0, 0, 0];
  return { count: row[1], distinct: row[2] };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('InfluxDB stopped mid-run: points are spilled to disk, then every one arrives exactly once, in order', async () => {
  proxy.requests.length = 0;
  const db = 'outage';
  const s = store(db, path.join(dir, 'spool-outage'));
  await s.start();
  let n = 0;
  const writer = setInterval(() => s.write(Array.from({ length: 10 }, () => seqPoint(n++))), 5);
  try {
    await eventually(() => s.stats().pointsWritten > 300, 10_000, 'first points');
    await influx.stop();
    await eventually(
      () => s.stats().spilledBytes > 0 && s.stats().spilledPoints > 500,
      20_000,
      'spill to disk',
    );
    await sleep(1000); // an outage of a few retries at the longest backoff
    const during = s.stats();
    expect(during.writeErrors).toBeGreaterThan(0);
    expect(during.bufferedPoints).toBeLessThanOrEqual(200 + 50 * 2);
    await influx.start();
    await sleep(300);
  } finally {
    clearInterval(writer);
  }
  await s.flush();
  const stats = s.stats();
  await s.stop();

  expect(stats).toMatchObject({ pointsWritten: n, droppedPoints: 0, bufferedPoints: 0, spilledPoints: 0 });
  expect(await countIn(db)).toEqual({ count: n, distinct: n });
  expect(acceptedValues()).toEqual(Array.from({ length: n }, (_, i) => i));
  expect(await readdir(path.join(dir, 'spool-outage'))).toEqual(['cursor']);
});

test('beyond the spool bound points are dropped and counted; the rest arrive', async () => {
  const db = 'overflow';
  const s = store(db, path.join(dir, 'spool-overflow'), { memoryPoints: 100, spillMaxBytes: 4096 });
  proxy.failWith = 503;
  await s.start();
  const total = 3000;
  for (let i = 0; i < total; i += 50) {
    s.write(Array.from({ length: 50 }, (_, j) => seqPoint(i + j)));
    await sleep(2);
  }
  await eventually(() => s.stats().droppedPoints > 0, 10_000, 'drops');
  const during = s.stats();
  expect(during.spilledBytes).toBeLessThanOrEqual(4096);
  expect(during.dropped.spool).toBe(during.droppedPoints);
  proxy.failWith = undefined;
  await s.flush();
  const stats = s.stats();
  await s.stop();
  expect(stats.droppedPoints).toBeGreaterThan(0);
  expect(stats.pointsWritten + stats.droppedPoints).toBe(total);
  expect(await countIn(db)).toEqual({ count: stats.pointsWritten, distinct: stats.pointsWritten });
});

test('a spool left by a stopped store is delivered, in order, by a new store on the next start', async () => {
  proxy.requests.length = 0;
  const db = 'restart';
  const spoolDir = path.join(dir, 'spool-restart');
  const first = store(db, spoolDir, { memoryPoints: 300 });
  proxy.failWith = 503;
  await first.start();
  const total = 1000;
  for (let i = 0; i < total; i += 50) {
    first.write(Array.from({ length: 50 }, (_, j) => seqPoint(i + j)));
    await sleep(5);
  }
  await eventually(() => first.stats().writeErrors > 2, 5000, 'failed attempts');
  // While writes fail every point goes to disk at once, the batch that was in flight first: a SIGKILL now
  // would lose nothing.
  await eventually(
    () => first.stats().spilledPoints === total && first.stats().bufferedPoints === 0,
    5000,
    'all on disk',
  );
  await first.stop();
  expect(first.stats()).toMatchObject({ pointsWritten: 0, droppedPoints: 0 });

  proxy.failWith = undefined;
  const second = store(db, spoolDir, { memoryPoints: 100 });
  await second.start();
  expect(second.stats().spilledPoints).toBe(total);
  second.write([seqPoint(total)]);
  await second.flush();
  const stats = second.stats();
  await second.stop();
  expect(stats).toMatchObject({ pointsWritten: total + 1, droppedPoints: 0, spilledBytes: 0 });
  expect(acceptedValues()).toEqual(Array.from({ length: total + 1 }, (_, i) => i));
  expect(await countIn(db)).toEqual({ count: total + 1, distinct: total + 1 });
  expect(await readdir(spoolDir)).toEqual(['cursor']);
});
