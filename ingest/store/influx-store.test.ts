import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { createLogger } from '../../lib/log.js';
import { capturingLogger } from '../../lib/testing/capture-log.js';
import { testInflux } from '../../lib/testing/db.js';
import type { Point } from '../types.js';
import { InfluxStore, type InfluxStoreOptions } from './influx-store.js';
import { eventually, influxQuery, type RecordingProxy, recordingProxy } from './influx-test-proxy.js';

const { url: influxUrl } = testInflux();
let proxy: RecordingProxy;
let dir: string;
const stores: InfluxStore[] = [];

beforeAll(async () => {
  proxy = await recordingProxy(influxUrl);
  dir = await mkdtemp(path.join(os.tmpdir(), 'herd-influx-store-'));
});
afterEach(async () => {
  proxy.failWith = undefined;
  await Promise.all(stores.splice(0).map((s) => s.stop()));
  proxy.requests.length = 0;
});
afterAll(async () => {
  await proxy.close();
  await rm(dir, { recursive: true, force: true });
});

function store(options: Partial<InfluxStoreOptions> = {}): { s: InfluxStore; db: string } {
  const db = options.db ?? testInflux().db;
  const s = new InfluxStore({
    url: proxy.url,
    db,
    batchSize: 1000,
    flushMs: 50,
    memoryPoints: 10_000,
    spillMaxBytes: 10_000_000,
    spoolDir: path.join(dir, db),
    log: createLogger('silent'),
    minBackoffMs: 20,
    maxBackoffMs: 100,
    ...options,
  });
  stores.push(s);
  return { s, db };
}

const point = (n: number, measurement = 'load_value'): Point => ({
  measurement,
  tags: { host: 'h1', type: 'load' },
  fields: { value: n },
  time: 1_700_000_000 + n,
});

describe('InfluxStore writing', () => {
  test('creates the database when missing, then writes gzip bodies with precision u', async () => {
    const { s, db } = store();
    const before = await influxQuery(influxUrl, '', 'SHOW DATABASES');
    expect(before.series?.[0]?.values?.flat() ?? []).not.toContain(db);
    await s.start();
    s.write([point(1), point(2), point(3)]);
    await s.flush();

    const after = await influxQuery(influxUrl, '', 'SHOW DATABASES');
    expect(after.series[0].values.flat()).toContain(db);
    const create = proxy.requests.findIndex((r) => r.path === '/query' && r.body.includes('CREATE+DATABASE'));
    const write = proxy.requests.findIndex((r) => r.path.startsWith('/write'));
    expect(create).toBeGreaterThanOrEqual(0);
    expect(create).toBeLessThan(write);
    const w = proxy.requests[write];
    expect(w.path).toBe(`/write?db=${db}&precision=u`);
    expect(w.headers['content-encoding']).toBe('gzip');
    expect(w.status).toBe(204);
    expect(w.body.split('\n')).toEqual([
      'load_value,host=h1,type=load value=1 1700000001000000',
      'load_value,host=h1,type=load value=2 1700000002000000',
      'load_value,host=h1,type=load value=3 1700000003000000',
    ]);
    const rows = await influxQuery(influxUrl, db, 'SELECT value FROM load_value');
    expect(rows.series[0].values).toEqual([
      [1_700_000_001_000_000, 1],
      [1_700_000_002_000_000, 2],
      [1_700_000_003_000_000, 3],
    ]);
    expect(s.stats()).toMatchObject({
      pointsWritten: 3,
      batchesWritten: 1,
      droppedPoints: 0,
      bufferedPoints: 0,
    });
  });

  test('awkward names round-trip through InfluxDB', async () => {
    const { s, db } = store();
    await s.start();
    const tags = {
      host: 'a,b=c d',
      instance: `q"uo'te\\back`,
      type: 'é✓ ünïcode',
      type_instance: '',
      'k,e y=': 'v',
    };
    s.write([
      { measurement: 'm,x y', tags, fields: { value: 0.125, 'f,i=e ld': -3 }, time: 1_700_000_000.000001 },
    ]);
    await s.flush();
    const rows = await influxQuery(influxUrl, db, 'SELECT * FROM "m,x y"');
    const [series] = rows.series;
    expect(series.name).toBe('m,x y');
    const row = Object.fromEntries(series.columns.map((c: string, i: number) => [c, series.values[0][i]]));
    expect(row).toEqual({
      time: 1_700_000_000_000_001,
      host: 'a,b=c d',
      instance: `q"uo'te\\back`,
      type: 'é✓ ünïcode',
      'k,e y=': 'v',
      value: 0.125,
      'f,i=e ld': -3,
    });
    const { type_instance: _, ...stored } = tags;
    expect(await s.listSeries({ measurement: 'm,x y' })).toEqual([{ measurement: 'm,x y', tags: stored }]);
    expect(await s.latest({ measurement: 'm,x y', tags: { host: 'a,b=c d', type_instance: '' } })).toEqual([
      { measurement: 'm,x y', tags: stored, field: 'value', time: 1_700_000_000.000001, value: 0.125 },
    ]);
    expect(
      await s.latest({ measurement: 'm,x y', field: 'f,i=e ld', tags: { instance: `q"uo'te\\back` } }),
    ).toMatchObject([{ value: -3 }]);
  });

  test('batches by size', async () => {
    const { s } = store({ batchSize: 3, flushMs: 60_000 });
    await s.start();
    s.write([1, 2, 3, 4, 5, 6, 7].map((n) => point(n)));
    const writes = () => proxy.requests.filter((r) => r.path.startsWith('/write'));
    await eventually(() => writes().length === 2, 5000, 'two batches');
    await new Promise((r) => setTimeout(r, 200));
    expect(writes().map((r) => r.body.split('\n').length)).toEqual([3, 3]);
    expect(s.stats().bufferedPoints).toBe(1);
    await s.flush();
    expect(writes().map((r) => r.body.split('\n').length)).toEqual([3, 3, 1]);
  });

  test('batches by time', async () => {
    const { s, db } = store({ batchSize: 1000, flushMs: 100 });
    await s.start();
    s.write([point(1)]);
    s.write([point(2)]);
    const writes = () => proxy.requests.filter((r) => r.path.startsWith('/write') && r.status === 204);
    await eventually(() => writes().length === 1, 5000, 'a timed batch');
    await new Promise((r) => setTimeout(r, 200));
    expect(writes()).toHaveLength(1);
    expect(writes()[0].body.split('\n')).toHaveLength(2);
    expect(
      (await influxQuery(influxUrl, db, 'SELECT count(value) FROM load_value')).series[0].values[0][1],
    ).toBe(2);
  });

  test('a field type conflict drops the refused points once, with a log line saying why; the rest are written', async () => {
    const { log, lines } = capturingLogger();
    const { s, db } = store({ log });
    // Field types are checked per shard: the string goes into the shard the store writes to.
    await fetch(`${influxUrl}/query`, {
      method: 'POST',
      body: new URLSearchParams({ q: `CREATE DATABASE "${db}"` }),
    });
    await fetch(`${influxUrl}/write?db=${db}`, {
      method: 'POST',
      body: 'conflict value="text" 1700000000000000000',
    });
    await s.start();
    s.write([point(1, 'conflict'), point(2, 'fine')]);
    await s.flush();
    expect(s.stats()).toMatchObject({
      pointsWritten: 1,
      droppedPoints: 1,
      dropped: { rejected: 1 },
      writeErrors: 1,
    });
    expect(proxy.requests.filter((r) => r.path.startsWith('/write'))).toHaveLength(1);
    expect(lines.join('')).toContain('field type conflict');
    const fine = await influxQuery(influxUrl, db, 'SELECT value FROM fine');
    expect(fine.series[0].values).toEqual([[1_700_000_002_000_000, 2]]);
  });

  test('points past the retention: dropped before sending once the store knows it, counted as too_old when InfluxDB refuses them', async () => {
    const { log, lines } = capturingLogger();
    const { s, db } = store({ log });
    await fetch(`${influxUrl}/query`, {
      method: 'POST',
      body: new URLSearchParams({ q: `CREATE DATABASE "${db}" WITH DURATION 1h` }),
    });
    await s.start();
    const nowS = Date.now() / 1000;
    const at = (t: number): Point => ({ ...point(0), time: t });
    // Not yet told the retention (the rollups read it at start): InfluxDB refuses the old point itself.
    s.write([at(nowS - 7200), at(nowS - 60)]);
    await s.flush();
    expect(s.stats()).toMatchObject({ pointsWritten: 1, dropped: { too_old: 1, rejected: 0 } });
    expect(proxy.requests.filter((r) => r.path.startsWith('/write'))).toHaveLength(1);
    // Told: the old point never leaves herd, and its host is named with its clock offset.
    s.retention.retentionSeconds = 3600;
    s.write([at(nowS - 7200), at(nowS - 30)]);
    await s.flush();
    expect(s.stats()).toMatchObject({ pointsWritten: 2, dropped: { too_old: 2, rejected: 0 } });
    expect(proxy.requests.filter((r) => r.path.startsWith('/write'))).toHaveLength(2);
    const warned = lines.map((l) => JSON.parse(l)).filter((e) => e.clockOffsetSeconds !== undefined);
    expect(warned).toMatchObject([{ host: 'h1', retentionHours: 1 }]);
    expect(warned[0].msg).toContain('hours behind');
    const kept = await influxQuery(influxUrl, db, 'SELECT count(value) FROM load_value');
    expect(kept.series[0].values[0][1]).toBe(2);
  });

  test('invalid points are counted, not sent', async () => {
    const { s } = store();
    await s.start();
    s.write([
      { measurement: 'm', tags: {}, fields: { value: Number.NaN }, time: 1 },
      { measurement: '', tags: {}, fields: { value: 1 }, time: 1 },
      { measurement: 'm', tags: { a: 'x\ny' }, fields: { value: 1 }, time: 1 },
      null as unknown as Point,
      point(1),
    ]);
    await s.flush();
    expect(s.stats()).toMatchObject({ pointsWritten: 1, dropped: { invalid: 4 } });
  });

  test('retries 5xx with backoff, sends credentials as basic auth and never logs the password', async () => {
    const { log, lines } = capturingLogger();
    const { s, db } = store({ log, username: 'herd', password: 's3cret-pw' });
    proxy.failWith = 503;
    await s.start();
    s.write([point(1)]);
    await eventually(() => s.stats().writeErrors >= 3, 5000, 'retries');
    proxy.failWith = undefined;
    await s.flush();
    expect(s.stats()).toMatchObject({ pointsWritten: 1, droppedPoints: 0 });
    const sent = proxy.requests.find((r) => r.path.startsWith('/write'))!;
    expect(sent.headers.authorization).toBe(`Basic ${Buffer.from('herd:s3cret-pw').toString('base64')}`);
    expect(sent.path).not.toContain('s3cret');
    const logged = lines.join('');
    expect(logged).toContain('will retry');
    expect(logged).not.toContain('s3cret-pw');
    expect(logged).not.toContain(Buffer.from('herd:s3cret-pw').toString('base64'));
    expect(
      (await influxQuery(influxUrl, db, 'SELECT count(value) FROM load_value')).series[0].values[0][1],
    ).toBe(1);
  });

  test('start and stop are safe to repeat; ping answers', async () => {
    const { s } = store();
    await Promise.all([s.start(), s.start()]);
    expect(await s.ping()).toBe(true);
    await Promise.all([s.stop(), s.stop()]);
    await s.stop();
    await s.start();
    s.write([point(1)]);
    await s.flush();
    expect(s.stats().pointsWritten).toBe(1);
  });
});
