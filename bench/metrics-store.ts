/**
 * The metrics store's write path: (1) line-protocol encoding on one core, with a fresh tags object per
 * value list (what ingest/points.ts produces) and with reused ones; (2) InfluxStore end to end into a
 * real influxd of its own, paced at 100,000 points/s: herd's CPU (main thread and gzip threads) and the
 * points that landed. Bounded to well under a minute. Figures go to bench/results/metrics-store.json.
 * Run with `npx tsx bench/metrics-store.ts`.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { InfluxStore } from '../ingest/store/influx-store.js';
import { LineEncoder } from '../ingest/store/line-protocol.js';
import { PointRules } from '../ingest/store/point-rules.js';
import type { Point } from '../ingest/types.js';
import { createLogger } from '../lib/log.js';
import { createInflux } from '../lib/testing/influxd.js';
import { sharedTempDir } from '../lib/testing/temp-dir.js';

const HOSTS = 2000;
const PLUGINS = ['cpu_value', 'memory_value', 'interface_rx', 'interface_tx', 'disk_read', 'load_shortterm'];
const RATE = 100_000;
const SECONDS = 5;

function tagsFor(i: number): Record<string, string> {
  return {
    host: `host-${i % HOSTS}.example.org`,
    instance: String(i % 4),
    type: 'derive',
    type_instance: 'user',
  };
}

function encodeScenario(freshTags: boolean): { pointsPerSecond: number; nsPerPoint: number } {
  const encoder = new LineEncoder(new PointRules());
  const shared = Array.from({ length: HOSTS * 4 }, (_, i) => tagsFor(i));
  const n = 1_000_000;
  const started = process.cpuUsage();
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const point: Point = {
      measurement: PLUGINS[i % PLUGINS.length],
      tags: freshTags ? tagsFor(i) : shared[i % shared.length],
      fields: { value: i * 1.000001 },
      time: 1.7e9 + i / 1e4,
    };
    bytes += (encoder.encode(point) as string).length;
  }
  const used = process.cpuUsage(started);
  const seconds = (used.user + used.system) / 1e6;
  if (bytes === 0) throw new Error('nothing encoded');
  return { pointsPerSecond: Math.round(n / seconds), nsPerPoint: Math.round((seconds / n) * 1e9) };
}

async function endToEnd(): Promise<Record<string, number>> {
  const dir = await sharedTempDir('herd-bench-store-');
  const influx = await createInflux(path.join(dir, 'influxd'));
  await influx.start();
  const store = new InfluxStore({
    url: influx.url,
    db: 'bench',
    batchSize: 5000,
    flushMs: 1000,
    memoryPoints: 500_000,
    spillMaxBytes: 1024 ** 3,
    spoolDir: path.join(dir, 'spool'),
    log: createLogger('warn'),
  });
  try {
    await store.start();
    const tick = 10;
    const perTick = (RATE * tick) / 1000;
    let sent = 0;
    const cpu = process.cpuUsage();
    const wall = performance.now();
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        const due = Math.min(RATE * SECONDS, Math.round(((performance.now() - wall) / 1000) * RATE));
        const batch: Point[] = [];
        while (sent < due && batch.length < perTick * 4) {
          batch.push({
            measurement: PLUGINS[sent % PLUGINS.length],
            tags: tagsFor(sent),
            fields: { value: sent },
            time: 1.7e9 + sent / 1e5,
          });
          sent++;
        }
        store.write(batch);
        if (sent >= RATE * SECONDS) {
          clearInterval(timer);
          resolve();
        }
      }, tick);
    });
    await store.flush();
    const used = process.cpuUsage(cpu);
    const elapsed = (performance.now() - wall) / 1000;
    const stats = store.stats();
    return {
      points: sent,
      seconds: Number(elapsed.toFixed(2)),
      pointsWritten: stats.pointsWritten,
      dropped: stats.droppedPoints,
      cpuPercentOfOneCore: Math.round(((used.user + used.system) / 1e6 / elapsed) * 100),
      meanWriteLatencyMs: Math.round(stats.writeLatency.sumMs / Math.max(1, stats.writeLatency.count)),
      rssMiB: Math.round(process.memoryUsage().rss / 2 ** 20),
    };
  } finally {
    await store.stop();
    await influx.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

const results = {
  machine: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}`,
  encodeFreshTags: encodeScenario(true),
  encodeReusedTags: encodeScenario(false),
  influxEndToEnd100k: await endToEnd(),
};
console.log(JSON.stringify(results, null, 2));
await mkdir('bench/results', { recursive: true });
await writeFile('bench/results/metrics-store.json', `${JSON.stringify(results, null, 2)}\n`);
