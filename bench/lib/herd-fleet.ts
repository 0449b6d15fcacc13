/**
 * Real herd processes for benchmarks (the built command line, `dist/app/cli.js serve`) and a simulated fleet
 * sending them the captured collectd traffic over UDP; values landed in InfluxDB counted.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import path from 'node:path';
import { sql } from 'kysely';
import type { Database } from '../../schema/db.js';
import { type Replay, stampTimes } from './replay.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
export const CLI = path.join(ROOT, 'dist/app/cli.js');
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A host sends its 31 captured packets over this many seconds: 2 packets (a 10 s interval's values) each 10 s. */
export const CYCLE_SECONDS = 150;

export interface Herd {
  child: ChildProcess;
  udpPort: number;
  http?: string;
  exited: () => boolean;
}

/** An API token of `username` on the herd at `base` (`POST /api/v1/session`). */
export async function apiToken(base: string, password: string, username = 'admin'): Promise<string> {
  const login = await fetch(`${base}/api/v1/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  if (!login.ok) throw new Error(`login as ${username} failed: ${login.status}`);
  return ((await login.json()) as { token: string }).token;
}

/** `herd serve <roles>` with `env`; resolves once it listens (collectd, and HTTP when it runs the API). */
export async function startHerd(env: Record<string, string>, roles: string[]): Promise<Herd> {
  const child = spawn(process.execPath, [CLI, 'serve', ...roles], {
    env: { ...process.env, HERD_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  let udpPort = 0;
  let http: string | undefined;
  const wantHttp = !roles.includes('--only') || roles.includes('api');
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('herd did not start within 60 s'));
    }, 60_000);
    child.once('exit', (code) => reject(new Error(`herd exited with ${code}`)));
    followLog(child, (e, line) => {
      if (e.msg === 'collectd listener bound') udpPort = e.port!;
      if (e.msg === 'HTTP API listening') http = e.address;
      if ((e.level ?? 0) >= 50) console.error('herd:', line);
      if (udpPort && (http || !wantHttp)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return { child, udpPort, http, exited: () => exited };
}

/** One line of herd's JSON log (pino). */
export interface LogEntry {
  msg?: string;
  level?: number;
  port?: number;
  address?: string;
}

/** Calls `onEntry` with each JSON line herd writes to stdout (other lines skipped). */
export function followLog(child: ChildProcess, onEntry: (entry: LogEntry, line: string) => void): void {
  let buffered = '';
  child.stdout!.on('data', (d) => {
    buffered += d;
    for (let i = buffered.indexOf('\n'); i >= 0; i = buffered.indexOf('\n')) {
      const line = buffered.slice(0, i);
      buffered = buffered.slice(i + 1);
      let entry: LogEntry;
      try {
        entry = JSON.parse(line);
      } catch {
        continue;
      }
      onEntry(entry, line);
    }
  });
}

/**
 * Pools as the benchmarks lay them out: `count` hardware pools (ids 2…, under the root pool, placement policies
 * taken in turn from `policies`) with one VM pool each (ids 101…, VM pool 100 + i under hardware pool 1 + i).
 */
export async function seedPools(db: Database, count: number, policies: string[] = ['spread']): Promise<void> {
  await sql`
    INSERT INTO pools (id, name, kind, parent_id, placement_policy)
    SELECT 1 + i, 'rack' || i, 'hardware', 1, (${policies}::text[])[1 + i % ${policies.length}]
    FROM generate_series(1, ${count}) i`.execute(db);
  await sql`
    INSERT INTO pools (id, name, kind, parent_id)
    SELECT 100 + i, 'team' || i, 'vm', 1 + i FROM generate_series(1, ${count}) i`.execute(db);
  await sql`SELECT setval(pg_get_serial_sequence('pools', 'id'), 1000)`.execute(db);
}

/** SIGTERMs the process and waits for it to exit (at once if it already has). */
export async function stopHerd(herd: Herd): Promise<void> {
  if (herd.exited()) return;
  const exited = new Promise((r) => herd.child.once('exit', r));
  herd.child.kill('SIGTERM');
  await exited;
}

/** Sends the replay at a collectd fleet's pace to whatever `port()` says; counts values sent and when. */
export class Fleet {
  private readonly socket = dgram.createSocket('udp4');
  private timer?: NodeJS.Timeout;
  private cursor = 0;
  sent = 0;
  sentWhileDown = 0;
  down = false;

  /** `base`: the time (s) the first cycle's points are stamped from; each cycle after is one capture span later. */
  constructor(
    private readonly replay: Replay,
    private readonly port: () => number,
    private readonly base = Date.now() / 1000 - 3 * 3600,
  ) {}

  start(): void {
    const perPacket = this.replay.packets[0].length;
    const total = this.replay.hosts * perPacket;
    const perTick = total / ((CYCLE_SECONDS * 1000) / 100);
    let owed = 0;
    this.timer = setInterval(() => {
      owed += perTick;
      for (; owed >= 1; owed--) this.sendOne(perPacket);
    }, 100);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  close(): void {
    this.stop();
    this.socket.close();
  }

  private sendOne(perHost: number): void {
    const i = this.cursor++;
    const host = i % this.replay.hosts;
    const packet = Math.floor(i / this.replay.hosts) % perHost;
    const cycle = Math.floor(i / (this.replay.hosts * perHost));
    const p = this.replay.packets[host][packet];
    // A copy: the socket reads the buffer later, and the next cycle re-stamps the same one.
    const bytes = Buffer.from(stampTimes(p, this.base + cycle * this.replay.span));
    this.sent += p.values;
    if (this.down) this.sentWhileDown += p.values;
    this.socket.send(bytes, this.port(), '127.0.0.1');
  }
}

/** Values stored in the InfluxDB database, herd's own measurements (`herd_*`) left out; -1 when unreadable. */
export async function influxCount(url: string, db: string): Promise<number> {
  const q = encodeURIComponent('SELECT count(value) FROM /.*/');
  const res = await fetch(`${url}/query?db=${db}&q=${q}`).catch(() => undefined);
  if (!res?.ok) return -1;
  const body = (await res.json()) as {
    results: Array<{ series?: Array<{ name: string; values: number[][] }> }>;
  };
  return (body.results[0]?.series ?? [])
    .filter((s) => !s.name.startsWith('herd_'))
    .reduce((sum, s) => sum + Number(s.values[0][1]), 0);
}

/** Polls `count` until it reaches `want` or stops changing for `settleMs`; returns the last count and when. */
export async function settle(
  count: () => Promise<number>,
  want: number,
  settleMs = 15_000,
  timeoutMs = 300_000,
) {
  const started = Date.now();
  let last = -1;
  let changedAt = Date.now();
  for (;;) {
    const now = await count();
    if (now !== last) {
      last = now;
      changedAt = Date.now();
    }
    if (now >= want || Date.now() - changedAt > settleMs || Date.now() - started > timeoutMs)
      return { count: last, seconds: (changedAt - started) / 1000 };
    await sleep(500);
  }
}
