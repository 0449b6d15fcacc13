import { type ChildProcess, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { buildReplay, stampTimes } from '../bench/lib/replay.js';
import { createTestDatabase } from '../lib/testing/db.js';
import { createInflux, type InfluxServer } from '../lib/testing/influxd.js';
import { waitFor } from '../lib/testing/wait.js';

/**
 * `herd serve --only ingest` (the built CLI) receiving 20 simulated hosts (the captured traffic, 1,144 values a round each) while InfluxDB is down, SIGKILLed,
 * started again, and InfluxDB back: every value sent lands exactly once. While writes fail the store puts every
 * batch on disk at once, so the kill loses nothing of what herd had received.
 */
const CLI = path.resolve('dist/app/cli.js');
const HOSTS = 20;
let dir: string;
let influx: InfluxServer;
const db = 'ingest_kill';
const children: ChildProcess[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'herd-ingest-kill-'));
  influx = await createInflux(path.join(dir, 'influxd'));
  await influx.start();
}, 120_000);
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await influx?.stop();
  await rm(dir, { recursive: true, force: true });
});

interface Ingest {
  child: ChildProcess;
  port: number;
  log: () => Array<Record<string, unknown>>;
}

async function startIngest(databaseUrl: string, port = 0): Promise<Ingest> {
  const child = spawn(process.execPath, [CLI, 'serve', '--only', 'ingest'], {
    env: {
      ...process.env,
      HERD_DATA_DIR: path.join(dir, 'data'),
      DATABASE_URL: databaseUrl,
      INFLUX_URL: influx.url,
      INFLUX_DB: db,
      HERD_COLLECTD_HOST: '127.0.0.1',
      HERD_COLLECTD_PORT: String(port),
      HERD_INFLUX_FLUSH_MS: '200',
      HERD_LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let output = '';
  child.stdout!.on('data', (d) => {
    output += d;
  });
  child.stderr!.on('data', (d) => {
    output += d;
  });
  const log = () =>
    output
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  let bound = 0;
  await waitFor(() => {
    bound = Number(log().find((e) => e.msg === 'collectd listener bound')?.port ?? 0);
    return bound > 0;
  }, 30_000);
  return { child, port: bound, log };
}

async function spoolBytes(): Promise<number> {
  const spool = path.join(dir, 'data', 'spool');
  let total = 0;
  for (const name of await readdir(spool).catch(() => [] as string[]))
    if (name.endsWith('.seg') || name === 'head.rec') total += (await stat(path.join(spool, name))).size;
  return total;
}

/** Values in InfluxDB: the count of every measurement (a regex FROM answers a series each). */
async function landed(): Promise<number> {
  const q = encodeURIComponent('SELECT count(value) FROM /.*/');
  const res = await fetch(`${influx.url}/query?db=${db}&q=${q}`);
  const body = (await res.json()) as { results: Array<{ series?: Array<{ values: number[][] }> }> };
  return (body.results[0].series ?? []).reduce((sum, s) => sum + Number(s.values[0][1]), 0);
}

test('InfluxDB down, the ingest process SIGKILLed and started again meanwhile: every value lands exactly once', async () => {
  const database = await createTestDatabase();
  const replay = buildReplay(HOSTS, (i) => `kill-host-${i}`);
  const socket = dgram.createSocket('udp4');
  // Rounds of every host's packets, each round at times of its own (an hour ago onwards: within retention).
  const base = Date.now() / 1000 - 3600;
  let round = 0;
  let sent = 0;
  const sendRound = async (port: number) => {
    const at = base + round++ * replay.span;
    for (const packets of replay.packets)
      for (const p of packets) {
        await new Promise<void>((resolve, reject) =>
          socket.send(stampTimes(p, at), port, '127.0.0.1', (e) => (e ? reject(e) : resolve())),
        );
        sent += p.values;
      }
    await new Promise((r) => setTimeout(r, 50));
  };
  try {
    const first = await startIngest(database.url);
    for (let i = 0; i < 3; i++) await sendRound(first.port);
    await waitFor(async () => (await landed()) === sent, 30_000, 200);

    await influx.stop();
    for (let i = 0; i < 3; i++) await sendRound(first.port);
    // Everything received is on disk within a seal period and a write; then the kill.
    let last = -1;
    await waitFor(
      async () => {
        const bytes = await spoolBytes();
        const steady = bytes > 0 && bytes === last;
        last = bytes;
        return steady;
      },
      20_000,
      300,
    );
    first.child.kill('SIGKILL');
    await new Promise((resolve) => first.child.once('exit', resolve));

    const second = await startIngest(database.url, first.port);
    for (let i = 0; i < 2; i++) await sendRound(second.port);
    await influx.start();
    await waitFor(async () => (await landed()) >= sent, 60_000, 250);
    // Nothing more arrives later (no value twice: InfluxDB keeps one point per series and time).
    await new Promise((r) => setTimeout(r, 1000));
    expect(await landed()).toBe(sent);
    const resumed = second.log().find((e) => e.msg === 'delivering points spooled by an earlier run');
    expect(Number(resumed?.points)).toBeGreaterThan(0);
    second.child.kill('SIGTERM');
    await new Promise((resolve) => second.child.once('exit', resolve));
  } finally {
    socket.close();
    await database.close();
  }
}, 180_000);
