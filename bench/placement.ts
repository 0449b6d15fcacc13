import { spawn } from 'node:child_process';
import { pbkdf2Sync } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { issueToken } from '../api/auth/auth.service.js';
import { prepareTaskQueue } from '../api/tasks/task-queue.js';
import { startEmbeddedPostgres } from '../lib/embedded-postgres.js';
import { createLogger } from '../lib/log.js';
import { sharedTempDir } from '../lib/testing/temp-dir.js';
import { connect, DEFAULT_POOL_SIZE, migrateToLatest } from '../schema/db.js';
import { CLOCK_TICKS, cpuTicks, runAndWaitMs, treeCpuTicks } from './lib/proc.js';

/**
 * `npm run bench:placement`: the start decision (access check, quota claim, placement, host claim, state change,
 * task queued) through herd's HTTP API under load, with 500 hosts, 200 pools and 10,000 VMs in PostgreSQL and
 * live usage for every host. Writes bench/results/placement.json.
 * Each of BENCH_ROUNDS rounds (default 5) starts the same BENCH_DECISIONS stopped VMs (default 4000) twice, put
 * back as they were in between: saturated (BENCH_CONCURRENCY clients, default 32, each asking again as soon as
 * answered: the most decisions per second) and at a fixed rate (BENCH_RATE per second, default 1000, at most
 * BENCH_CONCURRENCY in flight: the latency at that load). Figures are the median of the rounds.
 *
 * Environment: BENCH_WARMUP (default 500), BENCH_SEQUENTIAL (decisions measured one at a time first, for the service time; default 300),
 * BENCH_SYNCHRONOUS_COMMIT=off to have PostgreSQL acknowledge commits before their WAL is on disk (a deployment
 * choice: a crash may lose the last commits, never corrupt), BENCH_FAST=1 to run it without fsync at all (unsafe;
 * the default keeps full durability), BENCH_POOL_SIZE=n for the API's PostgreSQL connections (default: herd's),
 * BENCH_SLOW_MS=n to have PostgreSQL log statements slower than n ms (shown with HERD_LOG_LEVEL=debug),
 * BENCH_CPU_PROF=<dir> to have the API process write a V8 CPU profile (.cpuprofile) of the whole run there.
 */
const HOSTS = 500;
const HARDWARE_POOLS = 10;
const VM_POOLS = 190;
const VMS = 10_000;
const USERS = 100;
const DECISIONS = Number(process.env.BENCH_DECISIONS ?? 4000);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 500);
const SEQUENTIAL = Number(process.env.BENCH_SEQUENTIAL ?? 300);
/** Decisions made, not measured, before each round (after the VMs were put back). */
const ROUND_WARMUP = 200;
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const RATE = Number(process.env.BENCH_RATE ?? 1000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const FAST = process.env.BENCH_FAST === '1';
const ASYNC_COMMIT = process.env.BENCH_SYNCHRONOUS_COMMIT === 'off';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const log = createLogger(process.env.HERD_LOG_LEVEL ?? 'warn', 'bench');

async function main() {
  if (Math.max(DECISIONS + ROUND_WARMUP, WARMUP + SEQUENTIAL) > VMS / 2)
    throw new Error(`at most ${VMS / 2} decisions per round (the stopped VMs)`);
  const dir = await sharedTempDir('herd-bench-placement-');
  const cluster = path.join(dir, 'postgres');
  let pg = await startEmbeddedPostgres(cluster, log, { fast: FAST, password: 'bench' });
  const server: { kill?: () => void; pid?: number } = {};
  try {
    // pg_stat_statements (with planning time) breaks the decision down per statement: it needs a restart.
    const setup = connect(pg.url, { max: 1 });
    await sql`ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'`.execute(setup.db);
    await sql`ALTER SYSTEM SET pg_stat_statements.track_planning = on`.execute(setup.db);
    if (ASYNC_COMMIT) await sql`ALTER SYSTEM SET synchronous_commit = off`.execute(setup.db);
    if (process.env.BENCH_SLOW_MS) {
      await sql`ALTER SYSTEM SET log_min_duration_statement = ${sql.raw(String(Number(process.env.BENCH_SLOW_MS)))}`.execute(
        setup.db,
      );
    }
    await setup.close();
    await pg.stop();
    pg = await startEmbeddedPostgres(cluster, log, { fast: FAST, password: 'bench' });
    const db = connect(pg.url, { max: 4, log });
    await sql`CREATE EXTENSION pg_stat_statements`.execute(db.db);
    const { error } = await migrateToLatest(db.db);
    if (error) throw error;
    await prepareTaskQueue(db.pool, log);
    const seedStarted = performance.now();
    const tokens = await seed(db);
    await sql`VACUUM ANALYZE`.execute(db.db);
    await recycledWal(db);
    const seedMs = performance.now() - seedStarted;
    const stopped = await db.db
      .selectFrom('vms')
      .select(['id', 'owner_id'])
      .where('state', '=', 'shutoff')
      .orderBy(sql`md5(id::text)`)
      .execute();
    await db.close();

    const { url, kill, pid } = await startServer(pg.url);
    Object.assign(server, { kill, pid });
    // node:http with keep-alive rather than fetch: the load generator shares the 2 cores with what it measures.
    const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    const request = (vm: { id: number; owner_id: number }) =>
      post(agent, `${url}/api/v1/vms/${vm.id}/actions`, tokens.get(vm.owner_id)!, '{"action":"start"}');

    const cpu = connect(pg.url, { max: 1 });
    // postmaster.pid's first line: the process every PostgreSQL process of the cluster descends from.
    const postmaster = Number((await readFile(path.join(cluster, 'postmaster.pid'), 'utf8')).split('\n')[0]);
    // The measured decisions start the same stopped VMs each round: between rounds they are put back as they were
    // (no worker runs here, so started VMs stay `starting` and hold their claim until then), and their tasks'
    // jobs, which workers would have taken, are removed.
    // The benchmark's own statements stay out of the breakdown (its one connection is not tracked).
    await sql`SET pg_stat_statements.track = 'none'`.execute(cpu.db);
    const putBack = async () => {
      await sql`UPDATE vms SET state = 'shutoff', host_id = NULL, task_id = NULL, placement = NULL
        WHERE state = 'starting'`.execute(cpu.db);
      await sql`DELETE FROM graphile_worker._private_jobs`.execute(cpu.db);
      await sql`VACUUM ANALYZE vms, host_allocations, pool_usage, graphile_worker._private_jobs`.execute(
        cpu.db,
      );
      // ANALYZE made every connection's cached plans stale: a few decisions not measured (other VMs, put back
      // with the round's) plan them again, so that a round measures the service running, not its first minute.
      await load(stopped.slice(DECISIONS, DECISIONS + ROUND_WARMUP), request, CONCURRENCY);
    };
    await load(stopped.slice(0, WARMUP), request, CONCURRENCY);
    const alone = await load(stopped.slice(WARMUP, WARMUP + SEQUENTIAL), request, 1);
    await putBack();
    const loadBefore = os.loadavg()[0];
    await sql`SELECT pg_stat_statements_reset()`.execute(cpu.db);
    const closedRounds: Measured[] = [];
    const openRounds: Measured[] = [];
    const cpuMsTotal = { api: 0, postgres: 0, client: 0 };
    const cpuAtRate = { api: 0, postgres: 0, client: 0 };
    // Runs one round, adding the CPU time it took to `into`, and noting how contended the cores were: a fixed
    // piece of CPU work timed just before (machineMs: longer when the machine's host gives this VM less), and
    // how long the API's main thread waited for a core per ms it ran.
    const measured = async (into: typeof cpuMsTotal, run: () => Promise<Measured>) => {
      const probeStarted = performance.now();
      pbkdf2Sync('herd', 'bench', 200_000, 32, 'sha256');
      const machineMs = performance.now() - probeStarted;
      const before = await cpuTimes(postmaster, server.pid!);
      const apiBefore = await runAndWaitMs(server.pid!);
      const m = await run();
      const apiAfter = await runAndWaitMs(server.pid!);
      const after = await cpuTimes(postmaster, server.pid!);
      for (const part of ['api', 'postgres', 'client'] as const) into[part] += after[part] - before[part];
      return {
        ...m,
        machineMs,
        apiWaitPerRun: (apiAfter.wait - apiBefore.wait) / (apiAfter.run - apiBefore.run),
      };
    };
    for (let r = 0; r < ROUNDS; r++) {
      closedRounds.push(
        await measured(cpuMsTotal, () => load(stopped.slice(0, DECISIONS), request, CONCURRENCY)),
      );
      await putBack();
      openRounds.push(
        await measured(cpuAtRate, () => load(stopped.slice(0, DECISIONS), request, CONCURRENCY, RATE)),
      );
      await putBack();
    }
    const closedDecisions = closedRounds.reduce((n, m) => n + m.latencies.length, 0);
    const statements = await statementBreakdown(cpu, closedDecisions + openRounds.length * DECISIONS);
    await cpu.close();
    const perDecision = (total: typeof cpuMsTotal, decisions: number) => ({
      api: round(total.api / decisions),
      postgres: round(total.postgres / decisions),
      loadGenerator: round(total.client / decisions),
    });
    const cpuMs = perDecision(cpuMsTotal, closedDecisions);
    const closed = summary(closedRounds);
    const open = summary(openRounds);

    const result = {
      benchmark:
        'placement: start decision through the HTTP API (auth, access, quota claim, placement, host claim, task)',
      date: new Date().toISOString(),
      machine: {
        cpus: os.cpus().length,
        model: os.cpus()[0]?.model,
        node: process.version,
        // Other work on the machine shows here: the 1-minute load average before and after the measured run.
        loadAverage: [round(loadBefore), round(os.loadavg()[0])],
      },
      postgres: FAST
        ? 'embedded, fsync and synchronous_commit off'
        : ASYNC_COMMIT
          ? 'embedded, synchronous_commit off (fsync on)'
          : 'embedded, default durability (fsync, synchronous_commit on)',
      apiPoolSize: process.env.BENCH_POOL_SIZE ? Number(process.env.BENCH_POOL_SIZE) : DEFAULT_POOL_SIZE,
      data: {
        hosts: HOSTS,
        hardwarePools: HARDWARE_POOLS,
        vmPools: VM_POOLS,
        vms: VMS,
        users: USERS,
        liveUsageHosts: HOSTS,
      },
      seedSeconds: round(seedMs / 1000),
      concurrency: CONCURRENCY,
      warmup: WARMUP,
      rounds: ROUNDS,
      decisionsPerRound: DECISIONS,
      serviceTimeMs: {
        decisions: alone.latencies.length,
        median: round(quantile(alone.latencies, 0.5)),
        p99: round(quantile(alone.latencies, 0.99)),
      },
      // Closed loop: CONCURRENCY clients, each asking again as soon as answered — the most decisions per second.
      // Latency there is mostly waiting in line: with 32 always in flight it is 32 / throughput on average.
      saturated: {
        statuses: closed.statuses,
        decisionsPerSecond: closed.decisionsPerSecond,
        latencyMs: closed.latencyMs,
        byRound: closed.byRound,
      },
      // Open loop: decisions asked at RATE per second on a fixed schedule, at most CONCURRENCY in flight; each
      // latency runs from the moment its request was due (time spent waiting for a free slot counts).
      atRate: {
        ratePerSecond: RATE,
        statuses: open.statuses,
        achievedPerSecond: open.decisionsPerSecond,
        latencyMs: open.latencyMs,
        byRound: open.byRound,
        // How the answers slower than the p99 target spread over time: their number per round, the share of them
        // due in the round's 3 worst 100 ms windows (at 1,000/s, 7.5 % of the round), and where those start. A high
        // share means the tail is made of a few stalls (everything on the 2 cores waiting its turn), not of every
        // decision.
        slowBursts: openRounds.map((r) => slowBursts(r, 10, 100)),
      },
      // CPU time each decision cost (the machine is shared: this is what 2 dedicated cores would be divided by).
      cpuMsPerDecision: cpuMs,
      // The same at the fixed rate, where batches are smaller.
      cpuMsPerDecisionAtRate: perDecision(cpuAtRate, openRounds.length * DECISIONS),
      decisionsPerSecondPerCore: round(1000 / (cpuMs.api + cpuMs.postgres)),
      // PostgreSQL's planning + execution time per decision, by statement (pg_stat_statements), largest first.
      statementsMsPerDecision: statements,
      targets: { p99Ms: 10, decisionsPerSecond: 1000 },
      met: {
        decisionsPerSecond: closed.decisionsPerSecond >= 1000,
        p99AtRate: open.latencyMs.p99 < 10 && open.decisionsPerSecond >= RATE * 0.98,
      },
    };
    await mkdir(path.join(root, 'bench/results'), { recursive: true });
    await writeFile(path.join(root, 'bench/results/placement.json'), `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    server.kill?.();
    await pg.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

function post(agent: http.Agent, url: string, token: string, body: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: 'POST',
        agent,
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

type Answer = { status: number; body: string };

interface Measured {
  latencies: number[];
  /** When each request was due (or asked, without a rate), ms from the round's start; by index as latencies. */
  due: number[];
  statuses: Record<string, number>;
  wallMs: number;
  /** A fixed piece of CPU work (pbkdf2, 200,000 rounds) timed just before the round, ms. */
  machineMs?: number;
  /** How long the API's main thread waited, runnable, for a core per ms it ran during the round. */
  apiWaitPerRun?: number;
}

/**
 * Runs the requests with `concurrency` in flight. Without a rate each asks as soon as a slot frees and its latency
 * is its round trip; with one, item i is due i / rate seconds in (asked then, or as soon as a slot frees) and its
 * latency runs from when it was due — or from when it was asked, if earlier: a timer may fire up to a millisecond
 * before its time (node's timers run on the event loop's millisecond clock), and counting from the due time would
 * then leave out the time the request had been in flight already.
 */
async function load<T>(
  items: T[],
  request: (item: T) => Promise<Answer>,
  concurrency: number,
  rate?: number,
): Promise<Measured> {
  const latencies: number[] = [];
  const due: number[] = [];
  const statuses: Record<string, number> = {};
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) {
        const i = next++;
        let from = performance.now();
        if (rate) {
          from = started + (i * 1000) / rate;
          if (from > performance.now())
            await new Promise((resolve) => setTimeout(resolve, from - performance.now()));
          from = Math.min(from, performance.now());
        }
        const res = await request(items[i]);
        latencies.push(performance.now() - from);
        due.push(from - started);
        const key = res.status === 202 ? '202' : `${res.status} ${JSON.parse(res.body).error}`;
        statuses[key] = (statuses[key] ?? 0) + 1;
      }
    }),
  );
  return { latencies, due, statuses, wallMs: performance.now() - started };
}

/** Rounds summed up: statuses added, rates and latency quantiles as the median of the rounds' figures. */
function summary(rounds: Measured[]) {
  const statuses: Record<string, number> = {};
  for (const r of rounds)
    for (const [k, n] of Object.entries(r.statuses)) statuses[k] = (statuses[k] ?? 0) + n;
  const byRound = rounds.map((r) => ({
    decisionsPerSecond: round(r.latencies.length / (r.wallMs / 1000)),
    median: round(quantile(r.latencies, 0.5)),
    p90: round(quantile(r.latencies, 0.9)),
    p99: round(quantile(r.latencies, 0.99)),
    max: round(Math.max(...r.latencies)),
    machineMs: r.machineMs === undefined ? undefined : round(r.machineMs),
    apiWaitPerRun: r.apiWaitPerRun === undefined ? undefined : round(r.apiWaitPerRun),
  }));
  const median = (pick: (r: (typeof byRound)[number]) => number) => quantile(byRound.map(pick), 0.5);
  return {
    statuses,
    decisionsPerSecond: median((r) => r.decisionsPerSecond),
    latencyMs: {
      median: median((r) => r.median),
      p90: median((r) => r.p90),
      p99: median((r) => r.p99),
      max: median((r) => r.max),
    },
    byRound,
  };
}

/** The answers of a round slower than `overMs`, and the share of them due in its 3 worst `windowMs` windows. */
function slowBursts(r: Measured, overMs: number, windowMs: number) {
  const byWindow = new Map<number, number>();
  let slow = 0;
  r.latencies.forEach((ms, i) => {
    if (ms <= overMs) return;
    slow++;
    const w = Math.floor(r.due[i] / windowMs);
    byWindow.set(w, (byWindow.get(w) ?? 0) + 1);
  });
  const worst = [...byWindow.entries()].sort((a, b) => b[1] - a[1]).slice(0, 3);
  const worst3 = worst.reduce((n, [, count]) => n + count, 0);
  return {
    slow,
    inWorst3Windows: slow ? round(worst3 / slow) : 0,
    // Where those windows start, ms into the round.
    worstWindowsAtMs: worst.map(([w]) => w * windowMs),
  };
}

/**
 * 10 hardware pools of 50 hosts (policies spread, pack, load in turn), 190 VM pools with a pool-total and
 * per-user quotas, 100 users (each `user` on two VM pools), 10,000 VMs with a NIC and a volume each: half
 * running on hosts of their hardware pool, half stopped (what the benchmark starts).
 */
async function seed(db: ReturnType<typeof connect>): Promise<Map<number, string>> {
  const q = (s: ReturnType<typeof sql>) => s.execute(db.db);
  await q(sql`
    INSERT INTO pools (id, name, kind, parent_id, placement_policy)
    SELECT 1 + i, 'hw' || i, 'hardware', 1, (ARRAY['spread', 'pack', 'load'])[1 + i % 3]
    FROM generate_series(1, ${HARDWARE_POOLS}) i`);
  await q(sql`
    INSERT INTO pools (id, name, kind, parent_id)
    SELECT 100 + i, 'vms' || i, 'vm', 2 + i % ${HARDWARE_POOLS} FROM generate_series(1, ${VM_POOLS}) i`);
  await q(sql`SELECT setval(pg_get_serial_sequence('pools', 'id'), 1000)`);
  await q(sql`
    INSERT INTO hosts (pool_id, uri, hostname, cpus, memory_mib, state, enabled, last_seen_at)
    SELECT 2 + i % ${HARDWARE_POOLS}, 'test:///bench/h' || i || '.xml', 'bench-h' || i, 32, 262144, 'up', true, now()
    FROM generate_series(1, ${HOSTS}) i`);
  await q(sql`
    INSERT INTO users (username, source) SELECT 'user' || i, 'local' FROM generate_series(1, ${USERS}) i`);
  await q(sql`
    INSERT INTO permissions (pool_id, user_id, role)
    SELECT p.id, u.id, 'user' FROM pools p JOIN users u
      ON u.username IN ('user' || (1 + p.id % ${USERS}), 'user' || (1 + (p.id + 37) % ${USERS}))
    WHERE p.kind = 'vm'`);
  await q(sql`
    INSERT INTO quotas (pool_id, user_id, vcpus, memory_mib, storage_gib, nics, vms)
    SELECT pool_id, user_id, 100000, 100000000, 1000000, 100000, 100000 FROM permissions
    UNION ALL
    SELECT id, NULL, 1000000, 1000000000, 10000000, 1000000, 1000000 FROM pools WHERE kind = 'vm'`);
  await q(sql`
    INSERT INTO vms (uuid, name, pool_id, owner_id, vcpus, memory_mib, state, host_id)
    SELECT gen_random_uuid(), 'vm' || i, p.pool_id, p.user_id, 1 + i % 4, 1024 * (1 + i % 8),
      CASE WHEN i <= ${VMS / 2} THEN 'running' ELSE 'shutoff' END,
      CASE WHEN i <= ${VMS / 2} THEN (
        SELECT h.id FROM hosts h JOIN pools vp ON vp.parent_id = h.pool_id
        WHERE vp.id = p.pool_id ORDER BY h.id OFFSET (i % 50) LIMIT 1) END
    FROM generate_series(1, ${VMS}) i
    JOIN LATERAL (SELECT pool_id, user_id FROM permissions
      ORDER BY pool_id, user_id OFFSET (i % (SELECT count(*) FROM permissions)) LIMIT 1) p ON true`);
  await q(sql`
    INSERT INTO vm_nics (vm_id, mac)
    SELECT id, ('52:54:00:' || lpad(to_hex((id >> 16) & 255), 2, '0') || ':' || lpad(to_hex((id >> 8) & 255), 2, '0')
      || ':' || lpad(to_hex(id & 255), 2, '0'))::macaddr FROM vms`);
  await q(sql`
    INSERT INTO storage_pools (pool_id, type, name) SELECT id, 'nfs', 'nfs-' || id FROM pools WHERE kind = 'hardware'`);
  await q(sql`
    INSERT INTO volumes (storage_pool_id, name, path, size_gib, vm_id)
    SELECT sp.id, 'disk-' || v.id, '/srv/disk-' || v.id, 20, v.id
    FROM vms v JOIN pools vp ON vp.id = v.pool_id JOIN storage_pools sp ON sp.pool_id = vp.parent_id`);
  const users = await db.db.selectFrom('users').select('id').execute();
  const tokens = new Map<number, string>();
  for (const u of users) tokens.set(u.id, (await issueToken(db.db, u.id, { name: 'bench' })).token);
  return tokens;
}

/**
 * Brings the cluster's WAL to the state of a running one. A fresh cluster creates (and zero-fills) a new 16 MB WAL
 * segment each time one fills up, holding the WAL write lock meanwhile: every commit then stalls for tens of ms.
 * A running cluster renames the segments a checkpoint no longer needs into the next ones instead. So WAL is
 * switched through WAL_SEGMENTS segments, more than a run writes (~150 MB in 5 rounds), and a checkpoint recycles
 * them (min_wal_size keeps them).
 */
const WAL_SEGMENTS = 24;

async function recycledWal(db: ReturnType<typeof connect>) {
  await sql`ALTER SYSTEM SET min_wal_size = '1GB'`.execute(db.db);
  await sql`SELECT pg_reload_conf()`.execute(db.db);
  for (let i = 0; i < WAL_SEGMENTS; i++)
    await sql`SELECT pg_logical_emit_message(false, 'herd-bench', ''), pg_switch_wal()`.execute(db.db);
  await sql`CHECKPOINT`.execute(db.db);
}

/** The statements of the measured run: planning + execution ms per decision and calls per decision. */
async function statementBreakdown(db: ReturnType<typeof connect>, decisions: number) {
  const { rows } = await sql<{ query: string; calls: number; ms: number }>`
    SELECT regexp_replace(query, '[[:space:]]+', ' ', 'g') AS query, calls::int8 AS calls,
      (total_plan_time + total_exec_time)::float8 AS ms
    FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat%' ORDER BY ms DESC LIMIT 15`.execute(db.db);
  return rows.map((r) => ({
    ms: round(r.ms / decisions),
    calls: round(r.calls / decisions),
    statement: r.query.slice(0, 160),
  }));
}

/**
 * CPU time (ms) used so far by the API process, the PostgreSQL cluster (the postmaster and every process it
 * started: backends, WAL writer, checkpointer, autovacuum..., including backends that exited meanwhile, as idle
 * connections do), and this process.
 */
async function cpuTimes(postmasterPid: number, apiPid: number) {
  const ms = (ticks: Promise<number>) =>
    ticks.then(
      (t) => (t * 1000) / CLOCK_TICKS,
      () => 0,
    );
  const own = process.cpuUsage();
  return {
    api: await ms(cpuTicks(apiPid)),
    postgres: await ms(treeCpuTicks(postmasterPid)),
    client: (own.user + own.system) / 1000,
  };
}

async function startServer(databaseUrl: string): Promise<{ url: string; kill: () => void; pid: number }> {
  const child = spawn(
    process.execPath,
    [
      ...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []),
      '--import',
      'tsx',
      path.join(root, 'bench/lib/placement-server.ts'),
    ],
    {
      cwd: root,
      env: { ...process.env, DATABASE_URL: databaseUrl, HERD_LOG_LEVEL: 'warn', HERD_DATA_DIR: os.tmpdir() },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const lines = createInterface({ input: child.stdout! });
  const url = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`benchmark API exited with ${code}`)));
    lines.on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; address?: string };
        if (entry.msg === 'HTTP API listening' && entry.address) resolve(entry.address);
      } catch {}
    });
  });
  return { url, kill: () => child.kill('SIGTERM'), pid: child.pid! };
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

const round = (n: number) => Math.round(n * 100) / 100;

main().catch((err) => {
  process.stderr.write(
    `bench:placement failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
