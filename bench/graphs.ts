/**
 * Graphs answered by the API (`GET /api/v1/metrics` over HTTP, authenticated, access-checked) on a real
 * InfluxDB and PostgreSQL:
 * - a 7-day host graph (CPU busy): 7 days of a host's figures every 10 s, as herd's graph recorder writes
 *   them (api/metrics/graph-recorder.ts), read from the 5-minute rollups (target: median under 150 ms);
 * - a 24-hour pool graph (CPU busy) over 100 hosts with 24 hours of 10 s figures each (target: under
 *   300 ms), also from the rollups (more raw samples than a graph reads raw, see wantsRollups).
 * Graphs are 1000 px wide. Writes bench/results/graphs.json (graphs-postgres.json with --store postgres).
 *
 *   npm run bench:graphs [-- --runs 30 --hosts 100 --store influx|postgres]
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { buildApp } from '../api/app.js';
import { authRoutes } from '../api/auth/auth.routes.js';
import { metricsRoutes } from '../api/metrics/metrics.routes.js';
import { hostFigures, type SimulatedHost } from '../app/fleet-signal.js';
import { createStores } from '../ingest/store/stores.js';
import { loadConfig } from '../lib/config.js';
import { startEmbeddedPostgres } from '../lib/embedded-postgres.js';
import { createLogger } from '../lib/log.js';
import { createRegistry } from '../lib/metrics.js';
import { insertHost } from '../lib/testing/fleet.js';
import { createInflux } from '../lib/testing/influxd.js';
import { sharedTempDir } from '../lib/testing/temp-dir.js';
import { createPool, createUserWithToken } from '../lib/testing/users.js';
import { connect, migrateToLatest } from '../schema/db.js';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '30' },
    hosts: { type: 'string', default: '100' },
    store: { type: 'string', default: 'influx' },
  },
});
const RUNS = Number(args.runs);
const HOSTS = Number(args.hosts);
const STORE = args.store === 'postgres' ? 'postgres' : 'influx';
const CPUS = 4;
const WIDTH = 1000;
const DAY = 86_400;
const log = createLogger('warn', 'bench');

/** What herd's graph recorder writes for a host every 10 s (the series graphs read). */
function recordedPoints(host: SimulatedHost, from: number, to: number) {
  const points = [];
  for (let t = from; t < to; t += 10) points.push(hostFigures(host, t));
  return points;
}

async function main(): Promise<void> {
  const dir = await sharedTempDir('herd-bench-graphs-');
  const pg = await startEmbeddedPostgres(path.join(dir, 'postgres'), log, { fast: true, password: 'bench' });
  const influx = await createInflux(path.join(dir, 'influx'));
  await influx.start();
  const handle = connect(pg.url);
  try {
    const { error } = await migrateToLatest(handle.db);
    if (error) throw error;
    const config = loadConfig({
      HERD_DATA_DIR: dir,
      DATABASE_URL: pg.url,
      ...(STORE === 'influx' ? { INFLUX_URL: influx.url, INFLUX_DB: 'bench' } : {}),
    });
    const { store, rollups } = createStores(config, handle.db, log);
    await store.start();

    const now = Math.floor(Date.now() / 1000);
    const hosts: SimulatedHost[] = Array.from({ length: HOSTS }, (_, i) => ({
      name: `bench-${String(i).padStart(3, '0')}`,
      cpus: CPUS,
      memoryMiB: 65_536,
    }));
    const started = performance.now();
    let written = 0;
    // One host for 7 days, every host for the last day, a few hours at a time.
    for (let from = now - 7 * DAY; from < now; from += 6 * 3600) {
      const to = Math.min(from + 6 * 3600, now);
      for (const host of from >= now - DAY ? hosts : hosts.slice(0, 1)) {
        const points = recordedPoints(host, from, to);
        store.write(points);
        written += points.length;
        await store.flush();
      }
    }
    const writeSeconds = (performance.now() - started) / 1000;
    process.stderr.write(`wrote ${written} points in ${writeSeconds.toFixed(1)} s\n`);
    await rollups.start();
    await rollups.refresh(now - 7 * DAY, now);

    const poolId = await createPool(handle.db, { name: 'bench' });
    const hostIds: number[] = [];
    for (const h of hosts)
      hostIds.push(
        await insertHost(handle.db, { poolId, cpus: CPUS, memoryMiB: h.memoryMiB, hostname: h.name }),
      );
    const admin = await createUserWithToken(handle.db, { username: 'bench', superAdmin: true });

    const app = await buildApp({ config, db: handle.db, log, registry: createRegistry(), store, rollups }, [
      authRoutes,
      metricsRoutes,
    ]);
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const time = async (entity: string, from: number) => {
      const url = `${base}/api/v1/metrics?entity=${entity}&metric=cpu&from=${from}&to=${now}&width=${WIDTH}`;
      const t0 = performance.now();
      const res = await fetch(url, { headers: { authorization: `Bearer ${admin.token}` } });
      const body = (await res.json()) as {
        series: Array<{ points: unknown[] }>;
        source: string;
        step: number;
      };
      const ms = performance.now() - t0;
      if (res.status !== 200 || body.series[0]?.points.length === 0)
        throw new Error(`${url}: ${res.status} ${JSON.stringify(body).slice(0, 200)}`);
      return { ms, points: body.series[0].points.length, source: body.source, step: body.step };
    };
    const measure = async (entity: string, from: number) => {
      for (let i = 0; i < 3; i++) await time(entity, from);
      const runs = [];
      for (let i = 0; i < RUNS; i++) runs.push(await time(entity, from));
      const ms = runs.map((r) => r.ms).sort((a, b) => a - b);
      return {
        medianMs: round(ms[Math.floor(ms.length / 2)]),
        p95Ms: round(ms[Math.min(ms.length - 1, Math.floor(ms.length * 0.95))]),
        minMs: round(ms[0]),
        points: runs[0].points,
        stepSeconds: runs[0].step,
        source: runs[0].source,
      };
    };
    const host7d = await measure(`host:${hostIds[0]}`, now - 7 * DAY);
    const pool24h = await measure(`pool:${poolId}`, now - DAY);
    await app.close();
    await rollups.stop();
    await store.stop();

    const result = {
      benchmark: 'graphs',
      date: new Date().toISOString(),
      store: STORE,
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version },
      setup: {
        hosts: HOSTS,
        cpusPerHost: CPUS,
        intervalSeconds: 10,
        widthPx: WIDTH,
        runs: RUNS,
        pointsWritten: written,
      },
      host7d: { ...host7d, targetMs: 150, met: host7d.medianMs < 150 },
      pool24h: { ...pool24h, targetMs: 300, met: pool24h.medianMs < 300 },
    };
    await mkdir(path.join(import.meta.dirname, 'results'), { recursive: true });
    await writeFile(
      path.join(import.meta.dirname, 'results', STORE === 'influx' ? 'graphs.json' : 'graphs-postgres.json'),
      `${JSON.stringify(result, null, 2)}\n`,
    );
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await handle.close();
    await influx.stop();
    await pg.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

await main();
