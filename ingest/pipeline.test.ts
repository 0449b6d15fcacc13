import dgram from 'node:dgram';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createLogger, type Logger } from '../lib/log.js';
import { createRegistry, type Registry } from '../lib/metrics.js';
import { capturingLogger } from '../lib/testing/capture-log.js';
import { createTestDatabase } from '../lib/testing/db.js';
import { waitFor } from '../lib/testing/wait.js';
import type { DatabaseHandle } from '../schema/db.js';
import { EventSink } from './event-sink.js';
import { LiveView } from './live-view.js';
import { IngestPipeline } from './pipeline.js';
import { AuthFile } from './protocol/auth-file.js';
import {
  expectedRecords,
  FIXTURE_TYPES_DB,
  type FixtureFolder,
  fixturePackets,
} from './protocol/test-fixtures.js';
import { loadTypesDb } from './protocol/types-db.js';
import type { Point } from './types.js';
import { UdpListener } from './udp-listener.js';

/** Captured collectd packets over real UDP into the listener and pipeline; events into real PostgreSQL. */

let database: DatabaseHandle;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());

async function harness(
  options: { securityLevel?: 'none' | 'sign' | 'encrypt'; authFile?: string; log?: Logger } = {},
) {
  const log = options.log ?? createLogger('silent');
  const registry: Registry = createRegistry();
  const points: Point[] = [];
  const liveView = new LiveView();
  const events = new EventSink(database.db, log, { flushMs: 50 });
  const pipeline = new IngestPipeline({
    typesDb: await loadTypesDb([FIXTURE_TYPES_DB]),
    liveView,
    writePoints: (p) => points.push(...p),
    onNotification: (n) => events.push(n),
    multiValue: 'split',
    securityLevel: options.securityLevel ?? 'none',
    users: options.authFile ? await AuthFile.load(options.authFile) : undefined,
    registry,
    log,
  });
  const listener = new UdpListener(
    { host: '127.0.0.1', port: 0, rcvbuf: 4 * 1024 * 1024 },
    (p, source) => pipeline.handle(p, source),
    log,
  );
  await listener.start();
  events.start();
  const client = dgram.createSocket('udp4');
  const send = (packet: Buffer) =>
    new Promise<void>((resolve, reject) =>
      client.send(packet, listener.port, '127.0.0.1', (e) => (e ? reject(e) : resolve())),
    );
  const counter = async (name: string) =>
    (await registry.getMetricsAsJSON()).find((m) => m.name === name)?.values[0]?.value ?? 0;
  return {
    points,
    liveView,
    listener,
    events,
    send,
    counter,
    async close() {
      client.close();
      await listener.stop();
      await events.stop();
    },
  };
}

function expectedCounts(folder: FixtureFolder) {
  const records = expectedRecords(folder);
  const values = records.filter((r) => r.kind === 'values');
  const finite = values.flatMap((r) => r.values).filter((v) => typeof v === 'number').length;
  return {
    valueLists: values.length,
    points: finite,
    notifications: records.filter((r) => r.kind === 'notification').length,
  };
}

for (const folder of ['plain', 'virt', 'virt-uuid', 'notifications'] as const) {
  test(`${folder}: every value list collectd recorded arrives over UDP and becomes points`, async () => {
    const h = await harness();
    try {
      const want = expectedCounts(folder);
      for (const p of fixturePackets(folder)) await h.send(p.bytes);
      await waitFor(
        async () => (await h.counter('herd_collectd_value_lists_total')) >= want.valueLists,
        5000,
        20,
      );
      expect(await h.counter('herd_collectd_value_lists_total')).toBe(want.valueLists);
      expect(h.points.length).toBe(want.points);
      expect(await h.counter('herd_collectd_parse_errors_total')).toBe(0);
      expect(await h.counter('herd_collectd_notifications_total')).toBe(want.notifications);
      if (want.notifications > 0) {
        // stored as events in PostgreSQL, apart from metrics
        await waitFor(() => h.events.stats().stored >= want.notifications, 5000, 20);
        const recorded = expectedRecords(folder).filter((r) => r.kind === 'notification');
        const hosts = [...new Set(recorded.map((n) => n.host))];
        const rows = await database.db.selectFrom('events').selectAll().where('host', 'in', hosts).execute();
        expect(rows.map((r) => `${r.severity} ${r.host} ${r.message}`).sort()).toEqual(
          recorded.map((n) => `${n.severity_name} ${n.host} ${n.message}`).sort(),
        );
      }
    } finally {
      await h.close();
    }
  });
}

test('the live view keeps the latest load and memory per host', async () => {
  const h = await harness();
  try {
    for (const p of fixturePackets('plain')) await h.send(p.bytes);
    const expected = expectedRecords('plain').filter((r) => r.kind === 'values');
    const host = expected[0].host;
    await waitFor(() => h.liveView.hostSummary(host)?.load1 !== undefined, 5000, 20);
    const lastLoad = expected.filter((r) => r.kind === 'values' && r.plugin === 'load').at(-1)!;
    await waitFor(() => h.liveView.get(host, 'load', '', 'load')?.time === lastLoad.time, 5000, 20);
    const s = h.liveView.hostSummary(host)!;
    expect([s.load1, s.load5, s.load15]).toEqual(lastLoad.values);
    expect(s.memoryUsedMiB).toBeGreaterThan(0);
    expect(s.cpuBusyPercent).toBeGreaterThanOrEqual(0);
    expect(s.cpuBusyPercent).toBeLessThanOrEqual(100);
  } finally {
    await h.close();
  }
});

test('garbage, truncated and oversized packets are counted and never stop the listener', async () => {
  const h = await harness();
  try {
    const good = fixturePackets('plain')[0].bytes;
    await h.send(Buffer.from([0x00, 0x00, 0x00, 0x02]));
    await h.send(good.subarray(0, good.length - 7));
    await h.send(Buffer.alloc(60_000, 0xff));
    await h.send(good);
    await waitFor(async () => (await h.counter('herd_collectd_parse_errors_total')) >= 3, 5000, 20);
    await waitFor(() => h.listener.stats().packets === 4, 5000, 20);
    expect(await h.counter('herd_collectd_parse_errors_total')).toBe(3);
    expect(h.points.length).toBeGreaterThan(0);
  } finally {
    await h.close();
  }
});

test('bad packets are logged at most once a minute per sender, naming it', async () => {
  const { log, lines } = capturingLogger();
  const h = await harness({ log });
  const from = async (address: string, packets: Buffer[]) => {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, address, resolve));
    for (const p of packets)
      await new Promise<void>((resolve, reject) =>
        socket.send(p, h.listener.port, '127.0.0.1', (e) => (e ? reject(e) : resolve())),
      );
    socket.close();
  };
  try {
    const garbage = Buffer.from([0x00, 0x00, 0x00, 0x02]);
    await from('127.0.0.1', [garbage, garbage, garbage]);
    await from('127.0.0.2', [garbage, garbage]);
    await waitFor(async () => (await h.counter('herd_collectd_parse_errors_total')) === 5, 5000, 20);
    const warned = lines
      .map((l) => JSON.parse(l))
      .filter((e) => e.msg === 'collectd packet could not be decoded');
    expect(warned.map((e) => e.source).sort()).toEqual(['127.0.0.1', '127.0.0.2']);
  } finally {
    await h.close();
  }
});
