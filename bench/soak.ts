/**
 * Soak: one `herd serve` (every role) for HERD_SOAK_MINUTES (default 30) with 1,000 simulated hosts sending the
 * captured collectd traffic over UDP (a 10 s interval) and a bounded API load; writes bench/results/soak.json
 * (docs/benchmarks.md's "Soak" section).
 *
 *   npm run bench:soak            HERD_SOAK_MINUTES=3 npm run bench:soak
 *
 * Environment: HERD_SOAK_MINUTES (default 30), BENCH_HOSTS (default 1000), BENCH_API_RATE (requests/s, default 4),
 * BENCH_WARMUP_MINUTES (left out of the slopes, default 2), BENCH_SOAK_SUMMARIZE=<soak.json> (no run: the figures
 * computed again from the samples saved in that file).
 *
 * Its own PostgreSQL (embedded, default durability) and InfluxDB. The 1,000 hosts are registered (10 hardware
 * pools of 100, each a libvirt test-driver host herd's worker heartbeats), with a VM pool under each hardware pool
 * holding 20 stopped VMs. The API load cycles through the hosts list, a pool's usage, a host graph and a pool graph
 * (the last hour, `GET /api/v1/metrics`) and a VM's placement (`GET /api/v1/vms/:id/placement`: every candidate
 * host scored), at a fixed rate, one request at a time.
 *
 * Every 10 s it samples herd's RSS (/proc/<pid>/status), its open file descriptors (/proc/<pid>/fd) and the
 * event-loop delay herd reports on /metrics (`herd_event_loop_delay_seconds`, over herd's last 10 s window),
 * plus the machine's load average. Reported: RSS and fd slopes (least squares, per hour, after the warm-up), first
 * and last values, event-loop p99 (median and max of the samples), values sent and stored (counted in InfluxDB),
 * API answers by status and errors.
 */
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { startEmbeddedPostgres } from '../lib/embedded-postgres.js';
import { createLogger } from '../lib/log.js';
import { createInflux } from '../lib/testing/influxd.js';
import { writeTestHost } from '../lib/testing/libvirt-hosts.js';
import { sharedTempDir } from '../lib/testing/temp-dir.js';
import { connect, migrateToLatest } from '../schema/db.js';
import {
  apiToken,
  Fleet,
  influxCount,
  seedPools,
  settle,
  sleep,
  startHerd,
  stopHerd,
} from './lib/herd-fleet.js';
import { machineBusyTicks } from './lib/proc.js';
import { buildReplay } from './lib/replay.js';

const MINUTES = Number(process.env.HERD_SOAK_MINUTES ?? 30);
const HOSTS = Number(process.env.BENCH_HOSTS ?? 1000);
const API_RATE = Number(process.env.BENCH_API_RATE ?? 4);
const WARMUP_MINUTES = Number(process.env.BENCH_WARMUP_MINUTES ?? 2);
const POOLS = 10;
const VMS_PER_POOL = 20;
const SAMPLE_MS = 10_000;
const ADMIN_PASSWORD = 'soak-bench-admin';
const ROOT = path.resolve(import.meta.dirname, '..');
const log = createLogger('warn', 'bench');
const hostName = (i: number) => `soak-host-${String(i).padStart(4, '0')}`;

interface Sample {
  /** Seconds since the fleet started. */
  t: number;
  rssMiB: number;
  fds: number;
  /** Child processes of herd (absent in runs before it was sampled). */
  children?: number;
  /** herd_event_loop_delay_seconds{quantile="0.99"} and {quantile="1"}, in ms; null before herd's first window. */
  loopP99Ms: number | null;
  loopMaxMs: number | null;
  load1: number;
}

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

async function eventLoop(base: string): Promise<{ p99: number | null; max: number | null }> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const figure = (q: string) => {
    const m = new RegExp(`^herd_event_loop_delay_seconds\\{quantile="${q}"\\} (\\S+)$`, 'm').exec(text);
    return m ? Number(m[1]) * 1000 : null;
  };
  return { p99: figure('0.99'), max: figure('1') };
}

/** Least-squares slope of y over t (s), per hour; null with fewer than 2 points. */
function slopePerHour(points: ReadonlyArray<readonly [number, number]>): number | null {
  const n = points.length;
  if (n < 2) return null;
  const mt = points.reduce((s, [t]) => s + t, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [t, y] of points) {
    num += (t - mt) * (y - my);
    den += (t - mt) ** 2;
  }
  return den === 0 ? null : (num / den) * 3600;
}

const median = (xs: number[]) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const round1 = (x: number | null) => (x === null ? null : Math.round(x * 10) / 10);

/**
 * RSS, fds and herd's child processes: first, at the warm-up's end, last, max, and the least-squares slope per
 * hour after the warm-up and over the run's second half (a step, e.g. the first inventory pass starting one virsh
 * per host, weighs on the first and not on the second); event-loop p99: median and max of the samples.
 */
function trends(samples: Sample[]) {
  const afterWarmup = samples.filter((s) => s.t >= WARMUP_MINUTES * 60);
  const lastHalf = samples.filter((s) => s.t >= samples.at(-1)!.t / 2);
  const trend = (key: 'rssMiB' | 'fds' | 'children') => {
    const has = samples.filter((s) => s[key] !== undefined);
    if (!has.length) return undefined;
    const at = (s: Sample) => s[key] as number;
    const slope = (xs: Sample[]) =>
      round1(slopePerHour(xs.filter((s) => s[key] !== undefined).map((s) => [s.t, at(s)])));
    return {
      first: at(has[0]),
      atWarmupEnd: afterWarmup[0] ? at(afterWarmup[0]) : null,
      last: at(has.at(-1)!),
      max: Math.max(...has.map(at)),
      slopePerHour: slope(afterWarmup),
      lastHalfSlopePerHour: slope(lastHalf),
    };
  };
  const loops = samples.flatMap((s) => (s.loopP99Ms === null ? [] : [s.loopP99Ms]));
  return {
    rssMiB: trend('rssMiB'),
    fds: trend('fds'),
    children: trend('children'),
    eventLoopDelayP99Ms: { median: round1(median(loops)), max: loops.length ? Math.max(...loops) : null },
    eventLoopDelayMaxMs: { max: Math.max(0, ...samples.map((s) => s.loopMaxMs ?? 0)) },
  };
}

/** Child processes of `pid` (herd's worker kept one virsh shell per libvirt host before issue 24; now none). */
async function childCount(pid: number): Promise<number> {
  let n = 0;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) n++;
  }
  return n;
}

/** 10 hardware pools of HOSTS / 10 test-driver hosts, a VM pool with stopped VMs under each; returns their ids. */
async function seed(dir: string, databaseUrl: string) {
  const handle = connect(databaseUrl, { max: 2 });
  try {
    const { error } = await migrateToLatest(handle.db);
    if (error) throw error;
    const q = (s: ReturnType<typeof sql>) => s.execute(handle.db);
    await seedPools(handle.db, POOLS, ['spread', 'pack', 'load']);
    await q(sql`
      INSERT INTO quotas (pool_id, user_id, vcpus, memory_mib, storage_gib, nics, vms)
      SELECT id, NULL, 10000, 10000000, 100000, 10000, 10000 FROM pools WHERE kind = 'vm'`);
    const hosts = [];
    for (let i = 0; i < HOSTS; i++) {
      const name = hostName(i);
      const uri = await writeTestHost(path.join(dir, 'libvirt'), { name, cpus: 32, memoryMiB: 262144 });
      hosts.push({
        pool_id: 2 + (i % POOLS),
        uri,
        hostname: name,
        cpus: 32,
        memory_mib: 262144,
        state: 'up' as const,
      });
    }
    const hostIds = (await handle.db.insertInto('hosts').values(hosts).returning('id').execute()).map(
      (r) => r.id,
    );
    await q(sql`INSERT INTO users (username, source) VALUES ('soak-owner', 'local')`);
    await q(sql`
      INSERT INTO vms (uuid, name, pool_id, owner_id, vcpus, memory_mib, state)
      SELECT gen_random_uuid(), 'vm' || i, 101 + i % ${POOLS}, (SELECT id FROM users WHERE username = 'soak-owner'),
        1 + i % 4, 1024 * (1 + i % 8), 'shutoff'
      FROM generate_series(0, ${POOLS * VMS_PER_POOL - 1}) i`);
    const vmIds = (await handle.db.selectFrom('vms').select('id').execute()).map((r) => r.id);
    return { hostIds, vmIds, hardwarePools: Array.from({ length: POOLS }, (_, i) => 2 + i) };
  } finally {
    await handle.close();
  }
}

async function main() {
  const dir = await sharedTempDir('herd-bench-soak-');
  const pg = await startEmbeddedPostgres(path.join(dir, 'pg'), log, { password: 'soak' });
  const influx = await createInflux(path.join(dir, 'influx'));
  await influx.start();
  const influxDb = 'soak';
  let herd: Awaited<ReturnType<typeof startHerd>> | undefined;
  let fleet: Fleet | undefined;
  try {
    const seeded = await seed(dir, pg.url);
    herd = await startHerd(
      {
        HERD_DATA_DIR: path.join(dir, 'herd'),
        DATABASE_URL: pg.url,
        INFLUX_URL: influx.url,
        INFLUX_DB: influxDb,
        HERD_COLLECTD_HOST: '127.0.0.1',
        HERD_COLLECTD_PORT: '0',
        HERD_HTTP_HOST: '127.0.0.1',
        HERD_HTTP_PORT: '0',
        HERD_ADMIN_PASSWORD: ADMIN_PASSWORD,
        HERD_SAVE_DIR: path.join(dir, 'save'),
      },
      [],
    );
    const pid = herd.child.pid!;
    const base = herd.http!;
    const token = await apiToken(base, ADMIN_PASSWORD);

    const replay = buildReplay(HOSTS, hostName);
    // Points stamped from one capture span ago: each cycle then carries about the time it is sent.
    const udpPort = herd.udpPort;
    fleet = new Fleet(replay, () => udpPort, Date.now() / 1000 - replay.span);
    const started = Date.now();
    const endAt = started + MINUTES * 60_000;
    fleet.start();

    // API load: one request at a time, at API_RATE per second, cycling through representative routes.
    const statuses: Record<string, number> = {};
    const latencies: number[] = [];
    let apiErrors = 0;
    const pick = <T>(xs: T[], i: number) => xs[(i * 7919) % xs.length];
    const routes = [
      (i: number) => `/api/v1/hosts?limit=50&offset=${(i * 50) % HOSTS}`,
      (i: number) => `/api/v1/pools/${pick(seeded.hardwarePools, i)}/usage`,
      (i: number) =>
        `/api/v1/metrics?entity=host:${pick(seeded.hostIds, i)}&metric=cpu&from=${Math.floor(Date.now() / 1000) - 3600}&width=600`,
      (i: number) =>
        `/api/v1/metrics?entity=pool:${pick(seeded.hardwarePools, i)}&metric=load&from=${Math.floor(Date.now() / 1000) - 3600}&width=600`,
      (i: number) => `/api/v1/vms/${pick(seeded.vmIds, i)}/placement`,
    ];
    const api = (async () => {
      for (let i = 0; Date.now() < endAt; i++) {
        const due = started + (i * 1000) / API_RATE;
        if (due > Date.now()) await sleep(due - Date.now());
        const url = routes[i % routes.length](Math.floor(i / routes.length));
        const t0 = performance.now();
        const res = await fetch(`${base}${url}`, { headers: { authorization: `Bearer ${token}` } }).catch(
          (err: Error) => err,
        );
        const key = res instanceof Error ? 'connection error' : String(res.status);
        if (!(res instanceof Error)) await res.arrayBuffer();
        latencies.push(performance.now() - t0);
        statuses[key] = (statuses[key] ?? 0) + 1;
        if (res instanceof Error || res.status >= 400) {
          apiErrors++;
          if (apiErrors <= 5) console.error('API error', key, url);
        }
      }
    })();

    const samples: Sample[] = [];
    const busyStart = await machineBusyTicks();
    for (let next = started; next <= endAt; next += SAMPLE_MS) {
      if (next > Date.now()) await sleep(next - Date.now());
      if (herd.exited()) throw new Error('herd exited during the soak');
      const loop = await eventLoop(base).catch(() => ({ p99: null, max: null }));
      const s: Sample = {
        t: Math.round((Date.now() - started) / 100) / 10,
        rssMiB: Math.round((await rssMiB(pid)) * 10) / 10,
        fds: (await readdir(`/proc/${pid}/fd`)).length,
        children: await childCount(pid),
        loopP99Ms: round1(loop.p99),
        loopMaxMs: round1(loop.max),
        load1: os.loadavg()[0],
      };
      samples.push(s);
      console.log(JSON.stringify(s));
    }
    const seconds = (Date.now() - started) / 1000;
    const busy = (await machineBusyTicks()) - busyStart;
    await api;
    fleet.stop();
    const { count: stored } = await settle(() => influxCount(influx.url, influxDb), fleet.sent);
    await stopHerd(herd);

    const sortedLatency = [...latencies].sort((a, b) => a - b);
    const result = {
      date: new Date().toISOString(),
      machine: {
        cpus: os.cpus().length,
        node: process.version,
        // The machine is shared: its load meanwhile (1-minute load average sampled every 10 s, and the share of
        // all cores busy over the run, herd, PostgreSQL, InfluxDB, this load generator and others together).
        load1: { median: median(samples.map((s) => s.load1)), max: Math.max(...samples.map((s) => s.load1)) },
        busyCoresPercent: Math.round((busy / (seconds * 100 * os.cpus().length)) * 1000) / 10,
      },
      minutes: MINUTES,
      hosts: HOSTS,
      warmupMinutes: WARMUP_MINUTES,
      ...trends(samples),
      values: { sent: fleet.sent, stored, lost: Math.max(0, fleet.sent - stored) },
      api: {
        requests: latencies.length,
        perSecond: round1(latencies.length / seconds),
        errors: apiErrors,
        statuses,
        medianMs: round1(median(latencies)),
        p99Ms: round1(sortedLatency[Math.floor(sortedLatency.length * 0.99)] ?? null),
      },
      samples,
    };
    const { samples: _, ...summary } = result;
    console.log(JSON.stringify(summary, null, 2));
    await mkdir(path.join(ROOT, 'bench/results'), { recursive: true });
    const file = path.join(ROOT, 'bench/results/soak.json');
    await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`wrote ${path.relative(ROOT, file)}`);
  } finally {
    fleet?.close();
    if (herd && !herd.exited()) herd.child.kill('SIGKILL');
    await influx.stop().catch(() => undefined);
    await pg.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** BENCH_SOAK_SUMMARIZE=<soak.json>: the figures computed again from the samples saved there (rewritten). */
async function summarizeAgain(file: string) {
  const saved = JSON.parse(await readFile(file, 'utf8'));
  const { samples, ...rest } = saved;
  const result = { ...rest, ...trends(samples), samples };
  await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
  const { samples: _, ...summary } = result;
  console.log(JSON.stringify(summary, null, 2));
}

if (process.env.BENCH_SOAK_SUMMARIZE) await summarizeAgain(process.env.BENCH_SOAK_SUMMARIZE);
else await main();
