/**
 * Faults injected into real herd processes, with what was lost, duplicated and how long recovery took; writes
 * bench/results/faults.json (docs/benchmarks.md's "Faults survived" table).
 *
 *   npm run bench:faults [-- --hosts 1000 --outage 60 --pg-down 10 --fuzz 10000000 --only influx,postgres,fuzz]
 *
 * - influx: InfluxDB stopped for `--outage` s while `--hosts` simulated hosts send (the captured plain traffic:
 *   a host's 31 packets spread over 150 s, a 10 s interval's worth each time), `herd serve --only ingest`
 *   SIGKILLed half-way through the outage and started again. Every value sent to a listening herd must land in
 *   InfluxDB once; what was sent while no process listened (UDP to a closed port) is named apart.
 * - postgres: herd's own PostgreSQL stopped for `--pg-down` s under API load (4 clients) and ingest (200 hosts,
 *   metrics in PostgreSQL): answers meanwhile are 503 JSON, the process stays up, it serves again within seconds of
 *   PostgreSQL's return, and every value lands (PostgreSQL store's disk spool).
 * - fuzz: `--fuzz` mutated captured packets through the ingest pipeline in this process: no throw, each counted
 *   by reason, RSS bounded.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { LiveView } from '../ingest/live-view.js';
import { IngestPipeline } from '../ingest/pipeline.js';
import { FUZZ_USERS, fuzzed, fuzzSeeds, rng } from '../ingest/protocol/packet-fuzz.js';
import { FIXTURE_TYPES_DB } from '../ingest/protocol/test-fixtures.js';
import { loadTypesDb } from '../ingest/protocol/types-db.js';
import { startEmbeddedPostgres } from '../lib/embedded-postgres.js';
import { createLogger } from '../lib/log.js';
import { createRegistry } from '../lib/metrics.js';
import { createInflux, type InfluxServer } from '../lib/testing/influxd.js';
import { sharedTempDir } from '../lib/testing/temp-dir.js';
import { connect } from '../schema/db.js';
import { apiToken, Fleet, influxCount, settle, sleep, startHerd } from './lib/herd-fleet.js';
import { buildReplay } from './lib/replay.js';

const { values: args } = parseArgs({
  options: {
    hosts: { type: 'string', default: '1000' },
    outage: { type: 'string', default: '60' },
    'pg-down': { type: 'string', default: '10' },
    fuzz: { type: 'string', default: '10000000' },
    only: { type: 'string', default: 'influx,postgres,fuzz' },
  },
});
const ROOT = path.resolve(import.meta.dirname, '..');
const log = createLogger('warn', 'bench');
/** Values sent this long before the SIGKILL may still sit in the killed process's socket buffer or batch. */
const JUST_BEFORE_MS = 100;

interface Fault {
  name: string;
  injected: string;
  lost: number;
  /** What is lost by design, named (e.g. UDP sent while no process listened). */
  namedLoss?: Record<string, number>;
  duplicated: number;
  recoverySeconds: number | null;
  details: Record<string, unknown>;
}

async function influxFault(dir: string, pgUrl: string): Promise<Fault> {
  const hosts = Number(args.hosts);
  const outage = Number(args.outage);
  const influx: InfluxServer = await createInflux(path.join(dir, 'influx'));
  await influx.start();
  const db = 'faults';
  const env = {
    HERD_DATA_DIR: path.join(dir, 'herd-influx'),
    DATABASE_URL: pgUrl,
    INFLUX_URL: influx.url,
    INFLUX_DB: db,
    HERD_COLLECTD_HOST: '127.0.0.1',
    HERD_COLLECTD_PORT: '0',
  };
  let herd = await startHerd(env, ['--only', 'ingest']);
  const port = herd.udpPort;
  const fleet = new Fleet(
    buildReplay(hosts, (i) => `fault-host-${i}`),
    () => port,
  );
  try {
    fleet.start();
    await sleep(15_000);
    await influx.stop();
    await sleep((outage * 1000) / 2 - JUST_BEFORE_MS);
    const sentBefore = fleet.sent;
    await sleep(JUST_BEFORE_MS);
    herd.child.kill('SIGKILL');
    const sentJustBeforeKill = fleet.sent - sentBefore;
    fleet.down = true;
    const killedAt = Date.now();
    herd = await startHerd({ ...env, HERD_COLLECTD_PORT: String(port) }, ['--only', 'ingest']);
    fleet.down = false;
    const restartSeconds = (Date.now() - killedAt) / 1000;
    await sleep((outage * 1000) / 2 - (Date.now() - killedAt));
    await influx.start();
    const backAt = Date.now();
    await sleep(10_000);
    fleet.stop();
    const want = fleet.sent - fleet.sentWhileDown;
    const { count } = await settle(() => influxCount(influx.url, db), want);
    const recoverySeconds = (Date.now() - backAt) / 1000;
    herd.child.kill('SIGTERM');
    return {
      name: 'influx-outage-ingest-sigkill',
      injected: `InfluxDB stopped ${outage} s with ${hosts} hosts sending (10 s interval); herd --only ingest SIGKILLed half-way and started again`,
      // What the killed process had not yet read from its socket or sealed is lost with it: at most what was sent
      // in the last moments before the kill (a seal period is 20 ms while writes fail).
      lost: Math.max(0, want - count - Math.min(sentJustBeforeKill, Math.max(0, want - count))),
      namedLoss: {
        sentWhileNoProcessListened: fleet.sentWhileDown,
        inTheKilledProcessAtTheKill: Math.min(sentJustBeforeKill, Math.max(0, want - count)),
      },
      duplicated: Math.max(0, count - want),
      recoverySeconds: Math.round(recoverySeconds * 10) / 10,
      details: {
        valuesSent: fleet.sent,
        landed: count,
        [`sentInTheLast${JUST_BEFORE_MS}msBeforeTheKill`]: sentJustBeforeKill,
        restartSeconds,
        valuesPerSecond: Math.round(fleet.sent / (15 + outage + 10)),
      },
    };
  } finally {
    fleet.close();
    if (!herd.exited()) herd.child.kill('SIGKILL');
    await influx.stop().catch(() => undefined);
  }
}

async function postgresFault(dir: string): Promise<Fault> {
  const down = Number(args['pg-down']);
  const pgDir = path.join(dir, 'pg-restart');
  const password = 'faults';
  let pg = await startEmbeddedPostgres(pgDir, log, { fast: true, password });
  const pgPort = Number(new URL(pg.url).port);
  const herd = await startHerd(
    {
      HERD_DATA_DIR: path.join(dir, 'herd-pg'),
      DATABASE_URL: pg.url,
      HERD_COLLECTD_HOST: '127.0.0.1',
      HERD_COLLECTD_PORT: '0',
      HERD_HTTP_PORT: '0',
      HERD_ADMIN_PASSWORD: 'fault-bench-admin',
    },
    [],
  );
  const fleet = new Fleet(
    buildReplay(200, (i) => `pg-host-${i}`),
    () => herd.udpPort,
  );
  const token = await apiToken(herd.http!, 'fault-bench-admin');
  const statuses: Record<string, number> = {};
  let badBodies = 0;
  let firstOkAfterBack: number | undefined;
  let backAt: number | undefined;
  let running = true;
  const client = async () => {
    const urls = ['/api/v1/pools', '/api/v1/hosts?limit=20', '/api/v1/vms?limit=20', '/api/health'];
    for (let i = 0; running; i++) {
      const res = await fetch(`${herd.http}${urls[i % urls.length]}`, {
        headers: { authorization: `Bearer ${token}` },
      }).catch((err) => err as Error);
      const key = res instanceof Error ? 'connection error' : String(res.status);
      statuses[key] = (statuses[key] ?? 0) + 1;
      if (!(res instanceof Error)) {
        const text = await res.text();
        try {
          JSON.parse(text);
        } catch {
          badBodies++;
        }
        if (backAt && res.status === 200 && !firstOkAfterBack && !urls[i % urls.length].includes('health'))
          firstOkAfterBack = Date.now();
      }
      await sleep(50);
    }
  };
  const clients = Array.from({ length: 4 }, client);
  try {
    fleet.start();
    await sleep(10_000);
    await pg.stop();
    const during = { ...statuses };
    await sleep(down * 1000);
    pg = await startEmbeddedPostgres(pgDir, log, { fast: true, password, port: pgPort });
    backAt = Date.now();
    await sleep(10_000);
    fleet.stop();
    running = false;
    await Promise.all(clients);
    const handle = connect(pg.url, { max: 1 });
    const count = async () =>
      Number(
        (
          await handle.pool.query(
            `SELECT count(*) AS n FROM metric_points p JOIN metric_series s ON s.id = p.series_id
             WHERE s.field = 'value' AND s.measurement NOT LIKE 'herd\\_%'`,
          )
        ).rows[0].n,
      );
    const { count: landed } = await settle(count, fleet.sent);
    await handle.close();
    const outageStatuses = Object.fromEntries(
      Object.entries(statuses).map(([k, v]) => [k, v - (during[k] ?? 0)]),
    );
    return {
      name: 'postgres-restart-under-load',
      injected: `herd's PostgreSQL stopped ${down} s under API load (4 clients) and ingest (200 hosts, metrics in PostgreSQL)`,
      lost: Math.max(0, fleet.sent - landed),
      duplicated: Math.max(0, landed - fleet.sent),
      recoverySeconds: firstOkAfterBack && backAt ? Math.round((firstOkAfterBack - backAt) / 100) / 10 : null,
      details: {
        valuesSent: fleet.sent,
        landed,
        processExited: herd.exited(),
        answersFromTheOutageOn: outageStatuses,
        nonJsonBodies: badBodies,
      },
    };
  } finally {
    running = false;
    fleet.close();
    if (!herd.exited()) {
      herd.child.kill('SIGTERM');
      await new Promise((r) => herd.child.once('exit', r));
    }
    await pg.stop();
  }
}

async function fuzzFault(): Promise<Fault> {
  const n = Number(args.fuzz);
  const typesDb = await loadTypesDb([FIXTURE_TYPES_DB]);
  const seeds = fuzzSeeds();
  const pipeline = new IngestPipeline({
    typesDb,
    liveView: new LiveView(),
    writePoints: () => undefined,
    onNotification: () => undefined,
    multiValue: 'split',
    registry: createRegistry(),
    // Every bad sender is logged once a minute: 65,536 addresses here.
    log: createLogger('silent'),
    securityLevel: 'none',
    users: FUZZ_USERS,
  });
  const next = rng(20261207);
  const rssStart = process.memoryUsage().rss;
  let rssPeak = rssStart;
  const rssSamples: number[] = [];
  let crashes = 0;
  const started = performance.now();
  for (let i = 0; i < n; i++) {
    try {
      pipeline.handle(fuzzed(seeds, next), `10.${(i >> 16) & 255}.${(i >> 8) & 255}.1`);
    } catch {
      crashes++;
    }
    if (i % 500_000 === 0) {
      const rss = process.memoryUsage().rss;
      rssSamples.push(rss);
      rssPeak = Math.max(rssPeak, rss);
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const stats = pipeline.stats();
  const counted = stats.packets;
  return {
    name: 'fuzz-packets',
    injected: `${n.toLocaleString('en')} mutated captured packets (bit flips, truncation, lying lengths, swapped part types, noise, valid signature over wrong content)`,
    lost: n - counted,
    duplicated: 0,
    recoverySeconds: null,
    details: {
      crashes,
      seconds: Math.round(seconds),
      packetsPerSecond: Math.round(n / seconds),
      parseErrors: stats.parseErrors,
      authFailures: stats.authFailures,
      valueLists: stats.valueLists,
      unknownTypes: stats.unknownTypes,
      rssStartMiB: Math.round(rssStart / 2 ** 20),
      rssPeakMiB: Math.round(rssPeak / 2 ** 20),
      rssLastMiB: Math.round(rssSamples.at(-1)! / 2 ** 20),
    },
  };
}

async function main() {
  const only = new Set(args.only!.split(','));
  const dir = await sharedTempDir('herd-bench-faults-');
  const faults: Fault[] = [];
  try {
    if (only.has('influx')) {
      const pg = await startEmbeddedPostgres(path.join(dir, 'pg'), log, { fast: true, password: 'faults' });
      try {
        faults.push(await influxFault(dir, pg.url));
      } finally {
        await pg.stop();
      }
      console.log(JSON.stringify(faults.at(-1)));
    }
    if (only.has('postgres')) {
      faults.push(await postgresFault(dir));
      console.log(JSON.stringify(faults.at(-1)));
    }
    if (only.has('fuzz')) {
      faults.push(await fuzzFault());
      console.log(JSON.stringify(faults.at(-1)));
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  await mkdir(path.join(ROOT, 'bench/results'), { recursive: true });
  const file = path.join(ROOT, 'bench/results/faults.json');
  await writeFile(
    file,
    `${JSON.stringify({ date: new Date().toISOString(), machine: { cpus: os.cpus().length, node: process.version }, faults }, null, 2)}\n`,
  );
  console.log(`wrote ${path.relative(ROOT, file)}`);
}

await main();
