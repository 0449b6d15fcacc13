/**
 * Live push latency: packet sent → figure in a subscribed browser's socket. One `herd serve` (every role; its
 * own embedded PostgreSQL as the metrics store), 1,000 hosts registered in 10 hardware pools, 50 socket.io
 * clients logged in as the super-admin (every pool's room: the most pushes a client can get). Each host sends a
 * load value list every 10 s (staggered over the interval: 100 packets/s) whose load1 is a sequence number; a
 * client's latency for that host and number is the time from the datagram's send to the `metrics` event holding
 * it. Reported: p50/p99/max over every client's receipts, the share of packets that reached every client, and
 * herd's CPU over the measured window (all its threads, % of one core); written to bench/results/live.json.
 *
 *   npm run bench:live [-- --seconds 60 --hosts 1000 --clients 50]
 */
import dgram from 'node:dgram';
import { rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import { io, type Socket } from 'socket.io-client';
import { PacketEncoder } from '../ingest/protocol/encoder.js';
import type { ValueList } from '../ingest/types.js';
import { startEmbeddedPostgres } from '../lib/embedded-postgres.js';
import { createLogger } from '../lib/log.js';
import { writeTestHost } from '../lib/testing/libvirt-hosts.js';
import { sharedTempDir } from '../lib/testing/temp-dir.js';
import { connect, migrateToLatest } from '../schema/db.js';
import { apiToken, sleep, startHerd, stopHerd } from './lib/herd-fleet.js';
import { CLOCK_TICKS, cpuTicks } from './lib/proc.js';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    hosts: { type: 'string', default: '1000' },
    clients: { type: 'string', default: '50' },
  },
});
const SECONDS = Number(args.seconds);
const HOSTS = Number(args.hosts);
const CLIENTS = Number(args.clients);
const POOLS = 10;
const INTERVAL = 10;
const ADMIN_PASSWORD = 'live-bench-admin';
const log = createLogger('warn', 'bench');
const hostName = (i: number) => `live-host-${String(i).padStart(4, '0')}`;

async function seed(dir: string, url: string): Promise<Map<number, number>> {
  const handle = connect(url);
  try {
    const { error } = await migrateToLatest(handle.db);
    if (error) throw error;
    // Pool 1 is the one the migrations make.
    await sql`
      INSERT INTO pools (id, name, kind, parent_id)
      SELECT 1 + i, 'rack' || i, 'hardware', 1 FROM generate_series(1, ${POOLS}) i`.execute(handle.db);
    await sql`SELECT setval(pg_get_serial_sequence('pools', 'id'), 1000)`.execute(handle.db);
    const rows = [];
    for (let i = 0; i < HOSTS; i++)
      rows.push({
        pool_id: 2 + (i % POOLS),
        uri: await writeTestHost(path.join(dir, 'libvirt'), {
          name: hostName(i),
          cpus: 16,
          memoryMiB: 65_536,
        }),
        hostname: hostName(i),
        cpus: 16,
        memory_mib: 65_536,
        state: 'up' as const,
      });
    const ids = await handle.db.insertInto('hosts').values(rows).returning(['id', 'hostname']).execute();
    return new Map(ids.map((r) => [Number(r.hostname.slice('live-host-'.length)), r.id]));
  } finally {
    await handle.close();
  }
}

const quantile = (sorted: number[], q: number) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : Number.NaN;
const round = (v: number) => Math.round(v * 10) / 10;

async function main() {
  const dir = await sharedTempDir('herd-bench-live-');
  const pg = await startEmbeddedPostgres(path.join(dir, 'pg'), log, { password: 'live' });
  let herd: Awaited<ReturnType<typeof startHerd>> | undefined;
  const clients: Socket[] = [];
  const udp = dgram.createSocket('udp4');
  try {
    const hostIds = await seed(dir, pg.url);
    herd = await startHerd(
      {
        HERD_DATA_DIR: path.join(dir, 'herd'),
        DATABASE_URL: pg.url,
        HERD_COLLECTD_HOST: '127.0.0.1',
        HERD_COLLECTD_PORT: '0',
        HERD_HTTP_HOST: '127.0.0.1',
        HERD_HTTP_PORT: '0',
        HERD_ADMIN_PASSWORD: ADMIN_PASSWORD,
      },
      [],
    );
    const base = herd.http!;
    const token = await apiToken(base, ADMIN_PASSWORD);

    // When each (host id, sequence number) was sent, and every client's latency for it.
    const sentAt = new Map<string, number>();
    /** The (host, number) pairs sent in the measured window: their receipts count, whenever they arrive. */
    const measuredKeys = new Set<string>();
    const latencies: number[] = [];
    const receipts = new Map<string, number>();
    let measuring = false;
    for (let c = 0; c < CLIENTS; c++) {
      const socket = io(base, { path: '/socket.io', transports: ['websocket'], auth: { token } });
      const seen = new Set<string>();
      socket.on('metrics', (m: { hosts: Record<string, { load1: number | null }> }) => {
        const now = performance.now();
        for (const [id, figures] of Object.entries(m.hosts)) {
          const key = `${id}:${figures.load1}`;
          const at = sentAt.get(key);
          if (at === undefined || seen.has(key)) continue;
          seen.add(key);
          if (!measuredKeys.has(key)) continue;
          latencies.push(now - at);
          receipts.set(key, (receipts.get(key) ?? 0) + 1);
        }
      });
      await new Promise<void>((resolve, reject) => {
        socket.once('ready', () => resolve());
        socket.once('connect_error', reject);
      });
      clients.push(socket);
    }

    // Each host sends every INTERVAL s, the hosts spread over it; load1 carries a sequence number.
    const encoder = new PacketEncoder({ onPacket: (p) => udp.send(p, herd!.udpPort, '127.0.0.1') });
    const vl = (i: number, seq: number): ValueList => ({
      host: hostName(i),
      plugin: 'load',
      pluginInstance: '',
      type: 'load',
      typeInstance: '',
      time: Date.now() / 1000,
      interval: INTERVAL,
      dsTypes: ['gauge', 'gauge', 'gauge'],
      values: [seq, 0.5, 0.25],
    });
    let sent = 0;
    let measured = 0;
    const perTick = HOSTS / (INTERVAL * 10);
    let cursor = 0;
    let seq = 1;
    const timer = setInterval(() => {
      for (let k = 0; k < perTick; k++) {
        const i = cursor % HOSTS;
        if (i === 0 && cursor > 0) seq++;
        cursor++;
        const key = `${hostIds.get(i)}:${seq}`;
        sentAt.set(key, performance.now());
        if (measuring) measuredKeys.add(key);
        encoder.addValues(vl(i, seq));
        encoder.flush();
        sent++;
        if (measuring) measured++;
      }
    }, 100);

    // A warm-up interval (hosts seen once, rooms joined), then the measured window.
    await sleep(INTERVAL * 1000 + 2000);
    const ticks0 = await cpuTicks(herd.child.pid!);
    const t0 = performance.now();
    measuring = true;
    await sleep(SECONDS * 1000);
    measuring = false;
    const ticks1 = await cpuTicks(herd.child.pid!);
    const t1 = performance.now();
    clearInterval(timer);
    // What was sent last has time to arrive.
    await sleep(3000);

    const sorted = [...latencies].sort((a, b) => a - b);
    const everyClient = [...measuredKeys].filter((k) => (receipts.get(k) ?? 0) === CLIENTS).length;
    const result = {
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, node: process.version, load1: os.loadavg()[0] },
      hosts: HOSTS,
      clients: CLIENTS,
      intervalSeconds: INTERVAL,
      seconds: SECONDS,
      packetsPerSecond: HOSTS / INTERVAL,
      packetsMeasured: measured,
      latencyMs: {
        p50: round(quantile(sorted, 0.5)),
        p99: round(quantile(sorted, 0.99)),
        max: round(sorted.at(-1) ?? Number.NaN),
        receipts: sorted.length,
      },
      reachedEveryClient: measuredKeys.size ? round((100 * everyClient) / measuredKeys.size) : 0,
      herdCpuPercentOfOneCore: round((100 * (ticks1 - ticks0)) / CLOCK_TICKS / ((t1 - t0) / 1000)),
      sent,
    };
    console.log(JSON.stringify(result, null, 2));
    await writeFile(
      path.join(import.meta.dirname, 'results', 'live.json'),
      `${JSON.stringify(result, null, 2)}\n`,
    );
  } finally {
    for (const c of clients) c.disconnect();
    udp.close();
    if (herd) await stopHerd(herd);
    await pg.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
