/**
 * Fleet: one `herd serve --only worker` heartbeating N libvirt test-driver hosts served by libvirtd (issue 24
 * item 6); writes bench/results/fleet.json (docs/benchmarks-fleet.md).
 *
 *   npm run bench:fleet                     BENCH_FLEET_HOSTS=10000 npm run bench:fleet
 *
 * Environment: BENCH_FLEET_HOSTS (default 1000), BENCH_FLEET_DOMAINS (domains per host, default 20),
 * BENCH_FLEET_DAEMONS (libvirtds serving the hosts, default one per 2,500 hosts), BENCH_FLEET_WINDOW_SECONDS
 * (the measured window once every host had its first heartbeat, default 120), BENCH_FLEET_STARTUP_SECONDS (how
 * long herd may take to heartbeat every host once before the window starts anyway, default 360),
 * BENCH_FLEET_EVENTS (suspends and resumes in turn, default 100 in all), BENCH_FLEET_SIDE (the key in fleet.json; default
 * `legacy` while package.json depends on `@unraid/libvirt`, else `rpc`), BENCH_FLEET_EVENTS_SECONDS (the event part's
 * bound, default 300), BENCH_FLEET_SUMMARIZE=1 (no run: fleet.json's medians computed again from its runs).
 *
 * Its own embedded PostgreSQL and its own libvirtds (root, each in a mount namespace: lib/testing/libvirtd.ts)
 * with their client limits raised. Each host is a test-driver file (lib/testing/libvirt-hosts.ts) with 32 CPUs,
 * 256 GiB and BENCH_FLEET_DOMAINS running domains, registered in herd as `test+unix:///<file>?socket=<daemon>`
 * (10 hardware pools), each domain with its VM row (running, on its host), so every heartbeat reconciles them.
 * One more host, `test+unix:///default?socket=…`, is libvirtd's shared test driver state: the one a second
 * connection sees changing, used for the event latency.
 *
 * Measured: the time until every host had its first heartbeat (hosts start `unknown`, so that first pass also
 * reads each host's inventory); then over the window, herd's child processes and their descendants, RSS and open
 * file descriptors (every 2 s, /proc), the worker's CPU (utime + stime of herd's process, and of herd with its
 * children, /proc/<pid>/stat) as % of one core, and the heartbeat cycle: a trigger (the bench's own, on its own
 * database) logs every `hosts.heartbeat_at` herd writes; the k-th heartbeat of every host belongs to the k-th
 * cycle, whose duration is its last heartbeat minus its first. Then the event latency: the domain `test` of the
 * shared host suspended (and resumed) from outside herd, through a connection of the bench's own
 * (libvirt/client.ts), timed from the call until herd's VM row shows the new state (polled every 5 ms).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import pg from 'pg';
import { startEmbeddedPostgres } from '../lib/embedded-postgres.js';
import { createLogger } from '../lib/log.js';
import { testUuid, writeTestHost } from '../lib/testing/libvirt-hosts.js';
import { type Libvirtd, startLibvirtd } from '../lib/testing/libvirtd.js';
import { sharedTempDir } from '../lib/testing/temp-dir.js';
import { LibvirtClient } from '../libvirt/client.js';
import { P } from '../libvirt/procedures.js';
import { connect, migrateToLatest } from '../schema/db.js';
import { CLI, followLog, seedPools, sleep } from './lib/herd-fleet.js';
import { CLOCK_TICKS, cpuTicks, machineBusyTicks, treeCpuTicks } from './lib/proc.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const HOSTS = Number(process.env.BENCH_FLEET_HOSTS ?? 1000);
const DOMAINS = Number(process.env.BENCH_FLEET_DOMAINS ?? 20);
const DAEMONS = Number(process.env.BENCH_FLEET_DAEMONS ?? Math.max(1, Math.ceil(HOSTS / 2500)));
const WINDOW_S = Number(process.env.BENCH_FLEET_WINDOW_SECONDS ?? 120);
const STARTUP_S = Number(process.env.BENCH_FLEET_STARTUP_SECONDS ?? 360);
/** Events in all: suspends and resumes in turn. */
const EVENTS = Number(process.env.BENCH_FLEET_EVENTS ?? 100);
const INTERVAL_S = 10;
const POOLS = 10;
const SAMPLE_MS = 2000;
const EVENTS_S = Number(process.env.BENCH_FLEET_EVENTS_SECONDS ?? 300);
/** How long herd may take to show one event's state change (by the event or the heartbeat) before it counts as missed. */
const EVENT_TIMEOUT_MS = 60_000;
/** The domain libvirt's shared test driver state (`test:///default`) starts with. */
const DEFAULT_DOMAIN = 'test';
const log = createLogger('warn', 'bench');
const hostName = (i: number) => `fleet-host-${String(i).padStart(5, '0')}`;

function side(): string {
  if (process.env.BENCH_FLEET_SIDE) return process.env.BENCH_FLEET_SIDE;
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  return pkg.dependencies?.['@unraid/libvirt'] ? 'legacy' : 'rpc';
}

interface Sample {
  /** Seconds since herd started. */
  t: number;
  rssMiB: number;
  fds: number;
  /** herd's child processes and their descendants. */
  children: number;
  load1: number;
}

const quantile = (xs: number[], q: number) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
};
const round1 = (x: number | null | undefined) => (x == null ? null : Math.round(x * 10) / 10);

/** The libvirtds: client limits raised far beyond what N hosts need (a legacy host holds 3 connections). */
async function startDaemons(dir: string): Promise<Libvirtd[]> {
  const conf = [
    'max_clients = 30000',
    'max_anonymous_clients = 30000',
    'max_queued_clients = 30000',
    'min_workers = 5',
    'max_workers = 50',
    'prio_workers = 10',
    'max_client_requests = 50',
  ];
  return Promise.all(
    Array.from({ length: DAEMONS }, (_, i) =>
      startLibvirtd(path.join(dir, `libvirtd-${i}`), {
        // Far from the suite's indices: only the guests' port ranges depend on it, and no guest runs here.
        index: 40 + i,
        hostUuid: randomUUID(),
        kvm: false,
        conf,
      }),
    ),
  );
}

/** Hosts, their domains' VM rows (running, on the host), the shared host, and the heartbeat log trigger. */
async function seed(dir: string, databaseUrl: string, daemons: Libvirtd[]) {
  const handle = connect(databaseUrl, { max: 2 });
  try {
    const { error } = await migrateToLatest(handle.db);
    if (error) throw error;
    const q = (s: ReturnType<typeof sql>) => s.execute(handle.db);
    await seedPools(handle.db, POOLS);
    await q(sql`INSERT INTO users (username, source) VALUES ('fleet-owner', 'local')`);
    const owner = (
      await handle.db
        .selectFrom('users')
        .select('id')
        .where('username', '=', 'fleet-owner')
        .executeTakeFirstOrThrow()
    ).id;
    const files = path.join(dir, 'hosts');
    const hosts: Array<{
      name: string;
      uri: string;
      pool: number;
      domains: Array<{ name: string; uuid: string }>;
    }> = [];
    for (let i = 0; i < HOSTS; i++) {
      const name = hostName(i);
      const domains = Array.from({ length: DOMAINS }, (_, j) => ({
        name: `${name}-vm${j}`,
        uuid: testUuid(`${name}/${name}-vm${j}`),
      }));
      const file = (
        await writeTestHost(files, {
          name,
          cpus: 32,
          memoryMiB: 262144,
          domains: domains.map((d) => ({ name: d.name, vcpus: 1, memoryMiB: 1024 })),
          pools: [{ name: 'default' }],
        })
      ).slice('test://'.length);
      const socket = daemons[i % daemons.length].socket;
      hosts.push({ name, uri: `test+unix://${file}?socket=${socket}`, pool: 2 + (i % POOLS), domains });
    }
    // The shared host: its domain `test` is the one every connection to test:///default sees.
    const sharedUri = `test+unix:///default?socket=${daemons[0].socket}`;
    const probe = await LibvirtClient.connect(sharedUri);
    const sharedUuid = (await probe.call(P.domainLookupByName, DEFAULT_DOMAIN)).uuid;
    await probe.close();
    // First (the lowest id): the heartbeat takes hosts in id order, and the event part needs this one connected.
    hosts.unshift({
      name: 'fleet-shared',
      uri: sharedUri,
      pool: 2,
      domains: [{ name: DEFAULT_DOMAIN, uuid: sharedUuid }],
    });
    for (let i = 0; i < hosts.length; i += 500) {
      const chunk = hosts.slice(i, i + 500);
      const ids = await handle.db
        .insertInto('hosts')
        .values(
          chunk.map((h) => ({ pool_id: h.pool, uri: h.uri, hostname: h.name, cpus: 32, memory_mib: 262144 })),
        )
        .returning('id')
        .execute();
      const vms = chunk.flatMap((h, k) =>
        h.domains.map((d) => ({
          uuid: d.uuid,
          name: d.name,
          pool_id: h.pool + 99,
          owner_id: owner,
          host_id: ids[k].id,
          vcpus: 1,
          memory_mib: 1024,
          state: 'running' as const,
        })),
      );
      for (let j = 0; j < vms.length; j += 2000)
        await handle.db
          .insertInto('vms')
          .values(vms.slice(j, j + 2000))
          .execute();
    }
    await q(sql`CREATE TABLE bench_heartbeats (host_id integer NOT NULL, at timestamptz NOT NULL)`);
    await q(sql`
      CREATE FUNCTION bench_log_heartbeat() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO bench_heartbeats VALUES (NEW.id, NEW.heartbeat_at); RETURN NULL; END $$`);
    await q(sql`
      CREATE TRIGGER bench_heartbeat AFTER UPDATE OF heartbeat_at ON hosts FOR EACH ROW
      WHEN (NEW.heartbeat_at IS DISTINCT FROM OLD.heartbeat_at) EXECUTE FUNCTION bench_log_heartbeat()`);
    return { sharedUri, sharedUuid };
  } finally {
    await handle.close();
  }
}

/** `herd serve --only worker`; its log lines counted by level, warnings and errors by message. */
function startWorker(env: Record<string, string>) {
  const child: ChildProcess = spawn(process.execPath, [CLI, 'serve', '--only', 'worker'], {
    env: { ...process.env, HERD_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const problems: Record<string, number> = {};
  followLog(child, (e, line) => {
    if ((e.level ?? 0) < 40) return;
    const key = `${e.level! >= 50 ? 'error' : 'warn'}: ${e.msg}`;
    if (!problems[key]) console.error('herd:', line.slice(0, 600));
    problems[key] = (problems[key] ?? 0) + 1;
  });
  child.stderr!.on('data', (d) => process.stderr.write(`herd stderr: ${d}`));
  let exited: number | null | undefined;
  child.once('exit', (code) => {
    exited = code;
  });
  return { child, problems, exited: () => exited !== undefined };
}

/** Processes descending from `pid` (children, their children, …), by command name. */
async function descendants(pid: number): Promise<{ count: number; byName: Record<string, number> }> {
  const parent = new Map<number, { ppid: number; name: string }>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    if (!stat) continue;
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    parent.set(Number(entry), { ppid: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]), name });
  }
  const byName: Record<string, number> = {};
  let count = 0;
  for (const [p, info] of parent) {
    for (let up = info.ppid; up > 1; up = parent.get(up)?.ppid ?? 0) {
      if (up === pid) {
        count++;
        byName[info.name] = (byName[info.name] ?? 0) + 1;
        break;
      }
    }
    void p;
  }
  return { count, byName };
}

/** The bench's PostgreSQL postmaster and libvirtds: the processes whose command line names its directory. */
async function serverPids(dir: string): Promise<{ postgres: number; libvirtds: number[] }> {
  let postgres = 0;
  const libvirtds: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (!cmdline.some((arg) => arg.startsWith(dir))) continue;
    const name = path.basename(cmdline[0]);
    if (name === 'postgres') postgres = Number(entry);
    if (name === 'libvirtd') libvirtds.push(Number(entry));
  }
  return { postgres, libvirtds };
}

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 102.4) / 10;
}

/** Heartbeat cycles from the trigger's log: the k-th heartbeat of each host is in cycle k. */
async function cycles(db: pg.Client, from: Date, to: Date) {
  const { rows } = await db.query<{ k: number; hosts: number; first: Date; last: Date }>(
    `SELECT k, count(*)::int AS hosts, min(at) AS first, max(at) AS last FROM (
       SELECT at, row_number() OVER (PARTITION BY host_id ORDER BY at) AS k FROM bench_heartbeats) b
     GROUP BY k ORDER BY k`,
  );
  const all = rows.map((r) => ({
    k: Number(r.k),
    hosts: r.hosts,
    start: r.first,
    seconds: (r.last.getTime() - r.first.getTime()) / 1000,
  }));
  // Complete cycles (every host) that started in the window; the first one (with the inventory) apart.
  const inWindow = all.filter((c) => c.k > 1 && c.hosts === HOSTS + 1 && c.start >= from && c.start <= to);
  const seconds = inWindow.map((c) => c.seconds);
  // However long a cycle is (longer than the window, say): heartbeats per second over the window, and the cycle
  // that rate makes.
  const { rows: rate } = await db.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM bench_heartbeats WHERE at BETWEEN $1 AND $2',
    [from, to],
  );
  const perSecond = rate[0].n / ((to.getTime() - from.getTime()) / 1000);
  return {
    heartbeatsPerSecond: round1(perSecond),
    cycleSecondsAtThatRate: perSecond > 0 ? round1((HOSTS + 1) / perSecond) : null,
    first: all[0] ? { hosts: all[0].hosts, seconds: round1(all[0].seconds) } : null,
    inWindow: inWindow.length,
    incompleteInWindow: all.filter(
      (c) => c.k > 1 && c.hosts !== HOSTS + 1 && c.start >= from && c.start <= to,
    ).length,
    p50Seconds: round1(quantile(seconds, 0.5)),
    p99Seconds: round1(quantile(seconds, 0.99)),
    maxSeconds: round1(seconds.length ? Math.max(...seconds) : null),
    all: all.map((c) => ({ k: c.k, hosts: c.hosts, seconds: round1(c.seconds) })),
  };
}

/** Suspends and resumes the shared host's domain from outside herd; ms until herd's VM row shows each change. */
async function eventLatency(db: pg.Client, uri: string, uuid: string) {
  const client = await LibvirtClient.connect(uri);
  const dom = await client.call(P.domainLookupByName, DEFAULT_DOMAIN);
  const state = async () =>
    (await db.query<{ state: string }>('SELECT state FROM vms WHERE uuid = $1', [uuid])).rows[0]?.state;
  const waitFor = async (want: string, t0: number, timeoutMs = EVENT_TIMEOUT_MS) => {
    for (;;) {
      if ((await state()) === want) return performance.now() - t0;
      if (performance.now() - t0 > timeoutMs) return null;
      await sleep(5);
    }
  };
  const suspend: number[] = [];
  const resume: number[] = [];
  let missed = 0;
  let started = performance.now();
  try {
    // herd must have reached the host (its first heartbeat) before its events can reach herd.
    const connected = async () =>
      (await db.query('SELECT 1 FROM hosts WHERE uri = $1 AND heartbeat_at IS NOT NULL', [uri])).rowCount ===
      1;
    while (!(await connected())) {
      if (performance.now() - started > EVENTS_S * 1000)
        throw new Error('herd never reached the shared host');
      await sleep(100);
    }
    // The VM row must start running (the heartbeat agrees with the domain) before the first event.
    if ((await waitFor('running', performance.now(), EVENTS_S * 1000)) === null)
      throw new Error('the shared VM is not running');
    started = performance.now();
    for (let i = 0; i < EVENTS && performance.now() - started < EVENTS_S * 1000; i++) {
      const [call, want, into] =
        i % 2 === 0
          ? ([P.domainSuspend, 'paused', suspend] as const)
          : ([P.domainResume, 'running', resume] as const);
      const t0 = performance.now();
      await client.call(call, dom);
      const ms = await waitFor(want, t0);
      if (ms === null) {
        // Not seen within EVENT_TIMEOUT_MS: counted missed; the next event starts once herd shows this state.
        missed++;
        const left = EVENTS_S * 1000 - (performance.now() - started);
        if (left <= 0 || (await waitFor(want, performance.now(), left)) === null) break;
        continue;
      }
      into.push(ms);
      if ((i + 1) % 20 === 0) console.log(`${i + 1} events, last ${Math.round(ms)} ms`);
      await sleep(100 + Math.random() * 200);
    }
  } finally {
    await client.close();
  }
  const figures = (xs: number[]) => ({
    events: xs.length,
    p50Ms: round1(quantile(xs, 0.5)),
    p99Ms: round1(quantile(xs, 0.99)),
    maxMs: round1(xs.length ? Math.max(...xs) : null),
  });
  return {
    asked: EVENTS,
    seconds: round1((performance.now() - started) / 1000),
    suspend: figures(suspend),
    resume: figures(resume),
    both: figures([...suspend, ...resume]),
    missed,
  };
}

async function main() {
  const git = (...args: string[]) => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();
  const commit = git('rev-parse', '--short', 'HEAD');
  // The last commit that changed herd itself (not the benchmarks): the driver the run measured.
  const productCommit = git('log', '-1', '--format=%h', '--', 'api', 'lib', 'libvirt', 'ingest');
  const dir = await sharedTempDir('herd-bench-fleet-');
  const pgServer = await startEmbeddedPostgres(path.join(dir, 'pg'), log, { password: 'fleet' });
  let daemons: Libvirtd[] = [];
  let herd: ReturnType<typeof startWorker> | undefined;
  const db = new pg.Client({ connectionString: pgServer.url });
  try {
    await mkdir(path.join(dir, 'save'), { recursive: true });
    daemons = await startDaemons(dir);
    const seeded = await seed(dir, pgServer.url, daemons);
    await db.connect();
    console.log(`${HOSTS} hosts × ${DOMAINS} domains on ${DAEMONS} libvirtd(s); side ${side()} at ${commit}`);

    const started = Date.now();
    herd = startWorker({
      HERD_DATA_DIR: path.join(dir, 'herd'),
      DATABASE_URL: pgServer.url,
      HERD_SAVE_DIR: path.join(dir, 'save'),
      HERD_HEARTBEAT_SECONDS: String(INTERVAL_S),
    });
    const pid = herd.child.pid!;
    const peak = { children: 0, rssMiB: 0 };
    const childNames: Record<string, number> = {};
    const sample = async (): Promise<Sample> => {
      const kids = await descendants(pid);
      for (const [n, c] of Object.entries(kids.byName)) childNames[n] = Math.max(childNames[n] ?? 0, c);
      const s = {
        t: Math.round((Date.now() - started) / 100) / 10,
        rssMiB: await rssMiB(pid),
        fds: (await readdir(`/proc/${pid}/fd`)).length,
        children: kids.count,
        load1: os.loadavg()[0],
      };
      peak.children = Math.max(peak.children, s.children);
      peak.rssMiB = Math.max(peak.rssMiB, s.rssMiB);
      return s;
    };

    // Startup: until every host had one heartbeat (bounded).
    let heartbeated = 0;
    const startupSamples: Sample[] = [];
    while (Date.now() - started < STARTUP_S * 1000) {
      if (herd.exited()) throw new Error('herd exited during startup');
      heartbeated = (
        await db.query<{ n: number }>('SELECT count(*)::int AS n FROM hosts WHERE heartbeat_at IS NOT NULL')
      ).rows[0].n;
      startupSamples.push(await sample());
      if (heartbeated === HOSTS + 1) break;
      await sleep(SAMPLE_MS);
    }
    const startupSeconds = round1((Date.now() - started) / 1000);
    console.log(`first heartbeat of ${heartbeated}/${HOSTS + 1} hosts after ${startupSeconds} s`);

    // The window.
    const servers = await serverPids(dir);
    const windowStart = new Date();
    const cpu0 = {
      herd: await cpuTicks(pid),
      tree: await treeCpuTicks(pid),
      postgres: await treeCpuTicks(servers.postgres),
      libvirtd: (await Promise.all(servers.libvirtds.map(cpuTicks))).reduce((a, b) => a + b, 0),
      machine: await machineBusyTicks(),
    };
    const t0 = performance.now();
    const samples: Sample[] = [];
    for (let next = Date.now(); Date.now() - windowStart.getTime() < WINDOW_S * 1000; next += SAMPLE_MS) {
      if (next > Date.now()) await sleep(next - Date.now());
      if (herd.exited()) throw new Error('herd exited during the window');
      const s = await sample();
      samples.push(s);
      if (samples.length % 10 === 1) console.log(JSON.stringify(s));
    }
    const seconds = (performance.now() - t0) / 1000;
    const cpu1 = {
      herd: await cpuTicks(pid),
      tree: await treeCpuTicks(pid),
      postgres: await treeCpuTicks(servers.postgres),
      libvirtd: (await Promise.all(servers.libvirtds.map(cpuTicks))).reduce((a, b) => a + b, 0),
      machine: await machineBusyTicks(),
    };
    const windowEnd = new Date();
    const pct = (ticks: number) => round1((ticks / CLOCK_TICKS / seconds) * 100);
    const heartbeat = await cycles(db, windowStart, windowEnd);
    const hostStates = Object.fromEntries(
      (
        await db.query<{ state: string; n: number }>(
          'SELECT state, count(*)::int AS n FROM hosts GROUP BY state ORDER BY state',
        )
      ).rows.map((r) => [r.state, r.n]),
    );
    const heartbeatErrors = (
      await db.query<{ e: string; n: number }>(
        `SELECT left(heartbeat_error, 200) AS e, count(*)::int AS n FROM hosts WHERE heartbeat_error IS NOT NULL
         GROUP BY 1 ORDER BY 2 DESC LIMIT 5`,
      )
    ).rows;
    console.log(`heartbeat cycles: ${JSON.stringify({ ...heartbeat, all: undefined })}`);

    const events =
      EVENTS > 0
        ? await eventLatency(db, seeded.sharedUri, seeded.sharedUuid).catch((err: Error) => ({
            error: err.message,
          }))
        : null;
    console.log(`events: ${JSON.stringify(events)}`);
    const exitedEarly = herd.exited();

    const median = (key: 'rssMiB' | 'fds' | 'children') =>
      quantile(
        samples.map((s) => s[key]),
        0.5,
      );
    const result = {
      side: side(),
      commit,
      productCommit,
      date: new Date().toISOString(),
      machine: {
        cpus: os.cpus().length,
        node: process.version,
        load1: {
          median: quantile(
            samples.map((s) => s.load1),
            0.5,
          ),
          max: Math.max(...samples.map((s) => s.load1)),
        },
        busyCoresPercent: round1(
          ((cpu1.machine - cpu0.machine) / CLOCK_TICKS / seconds / os.cpus().length) * 100,
        ),
      },
      hosts: HOSTS,
      domainsPerHost: DOMAINS,
      libvirtds: DAEMONS,
      heartbeatIntervalSeconds: INTERVAL_S,
      windowSeconds: round1(seconds),
      startup: {
        allHeartbeated: heartbeated === HOSTS + 1,
        hostsHeartbeated: heartbeated,
        seconds: startupSeconds,
        peakChildren: Math.max(0, ...startupSamples.map((s) => s.children)),
        peakRssMiB: Math.max(0, ...startupSamples.map((s) => s.rssMiB)),
      },
      children: {
        median: median('children'),
        max: Math.max(...samples.map((s) => s.children)),
        byName: childNames,
      },
      rssMiB: { median: median('rssMiB'), max: Math.max(...samples.map((s) => s.rssMiB)) },
      fds: { median: median('fds'), max: Math.max(...samples.map((s) => s.fds)) },
      workerCpuPercentOfOneCore: {
        herd: pct(cpu1.herd - cpu0.herd),
        withChildren: pct(cpu1.tree - cpu0.tree),
      },
      // What herd waits on: PostgreSQL (postmaster and backends) and the libvirtds (all together).
      serversCpuPercentOfOneCore: {
        postgres: pct(cpu1.postgres - cpu0.postgres),
        libvirtd: pct(cpu1.libvirtd - cpu0.libvirtd),
      },
      heartbeatCycle: heartbeat,
      hostStates,
      heartbeatErrors,
      herdLogProblems: herd.problems,
      herdExited: exitedEarly,
      events,
      samples,
    };
    await save(result);
  } finally {
    await db.end().catch(() => undefined);
    if (herd && !herd.exited()) {
      const gone = new Promise((r) => herd!.child.once('exit', r));
      herd.child.kill('SIGTERM');
      const killer = setTimeout(() => herd!.child.kill('SIGKILL'), 15_000);
      await gone;
      clearTimeout(killer);
    }
    await Promise.all(daemons.map((d) => d.stop().catch(() => undefined)));
    await pgServer.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * fleet.json: per side (`legacy`, `rpc`) and host count, every run (samples left out of all but the last) and
 * the median of the runs' headline figures.
 */
async function save(result: Record<string, unknown> & { side: string; hosts: number; samples: unknown[] }) {
  const file = path.join(ROOT, 'bench/results/fleet.json');
  const all = JSON.parse(await readFile(file, 'utf8').catch(() => '{}'));
  const key = String(result.hosts);
  const entry = all[result.side]?.[key] ?? { runs: [] };
  const runs = [...entry.runs.map(({ samples: _, ...r }: { samples?: unknown }) => r), result];
  const { samples: _, ...summary } = result;
  console.log(
    JSON.stringify(
      { ...summary, heartbeatCycle: { ...(summary.heartbeatCycle as object), all: undefined } },
      null,
      2,
    ),
  );
  all[result.side] = { ...all[result.side], [key]: { median: medians(runs), runs } };
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(all, null, 2)}\n`);
  console.log(`wrote ${path.relative(ROOT, file)}`);
}

/** The median over runs of each headline figure (the runs' commits listed). */
function medians(runs: Array<Record<string, any>>) {
  const pick: Record<string, (r: Record<string, any>) => number | null | undefined> = {
    startupSeconds: (r) => r.startup?.seconds,
    childrenMax: (r) => r.children?.max,
    rssMiBMedian: (r) => r.rssMiB?.median,
    rssMiBMax: (r) => r.rssMiB?.max,
    fdsMedian: (r) => r.fds?.median,
    workerCpuPercent: (r) => r.workerCpuPercentOfOneCore?.herd,
    workerCpuPercentWithChildren: (r) => r.workerCpuPercentOfOneCore?.withChildren,
    heartbeatCycleP50Seconds: (r) => r.heartbeatCycle?.p50Seconds,
    heartbeatCycleP99Seconds: (r) => r.heartbeatCycle?.p99Seconds,
    eventP50Ms: (r) => r.events?.both?.p50Ms,
    eventP99Ms: (r) => r.events?.both?.p99Ms,
    eventsMissed: (r) => r.events?.missed,
  };
  const out: Record<string, unknown> = {
    runs: runs.length,
    commits: [...new Set(runs.map((r) => r.commit))],
  };
  for (const [name, f] of Object.entries(pick)) {
    const xs = runs.map(f).filter((x): x is number => typeof x === 'number');
    const s = [...xs].sort((a, b) => a - b);
    out[name] = round1(
      s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : null,
    );
  }
  return out;
}

/** BENCH_FLEET_SUMMARIZE=1: no run; the medians in fleet.json computed again from its runs. */
async function summarizeAgain() {
  const file = path.join(ROOT, 'bench/results/fleet.json');
  const all = JSON.parse(await readFile(file, 'utf8'));
  for (const bySide of Object.values(all) as Array<
    Record<string, { runs: Array<Record<string, unknown>>; median?: unknown }>
  >)
    for (const [n, entry] of Object.entries(bySide)) bySide[n] = { ...entry, median: medians(entry.runs) };
  await writeFile(file, `${JSON.stringify(all, null, 2)}\n`);
}

if (process.env.BENCH_FLEET_SUMMARIZE) await summarizeAgain();
else await main();
