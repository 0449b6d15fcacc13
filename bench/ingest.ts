/**
 * End to end, side by side in one run: herd versus InfluxDB's own collectd listener, the same replayed
 * traffic (the plain fixture capture rewritten for N hosts) sent to both at increasing rates.
 * For each rate and each receiver: values sent, values landed in InfluxDB, loss, kernel drops, CPU of the
 * receiving process. Reports the highest loss-free rate of each (median over runs) and their ratio, herd's
 * CPU at InfluxDB's best rate, herd's RSS while 2,000 hosts send, and writes bench/results/ingest.json.
 *
 *   npm run bench:ingest [-- --runs 3 --seconds 8 --hosts 1000 --rcvbuf 4194304]
 *
 * herd runs as its own process (`herd serve --only ingest`) writing to an influxd of its own; InfluxDB's
 * listener is a `[[collectd]]` section in another influxd. The sender runs in this process, one connected
 * socket per receiver, so both get the same datagrams at the same moment.
 *
 * Loss-free means sustained: both receivers get the same socket receive buffer (`--rcvbuf`, herd's
 * HERD_COLLECTD_RCVBUF and InfluxDB's `read-buffer`), and it must not be so large that it hides a receiver
 * slower than the rate for a whole step. The kernel charges 2,304 bytes of buffer for a datagram of this
 * traffic: herd's 16 MiB default holds 14,500 of them, 4.5 s at 3,200 packets/s, so in a step of a few
 * seconds a receiver running at a quarter of the rate would lose nothing. 4 MiB holds 3,600 (about a second
 * at that rate, for scheduling jitter on a busy 2-core machine), so in a step of 8 s any receiver more than
 * ~14% short of the rate loses packets.
 * HERD_BENCH_NODE_FLAGS passes flags to herd's node (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type EmbeddedDatabase, freePort, startEmbeddedPostgres } from '../lib/embedded-postgres.js';
import { createLogger } from '../lib/log.js';
import { createInflux, type InfluxServer } from '../lib/testing/influxd.js';
import { sharedTempDir } from '../lib/testing/temp-dir.js';
import {
  CLOCK_TICKS,
  cpuTicks,
  machineBusyTicks,
  memory,
  udpBound,
  udpDrops,
  udpReceiveBuffer,
} from './lib/proc.js';
import { buildReplay, type Replay, stampTimes } from './lib/replay.js';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '8' },
    hosts: { type: 'string', default: '1000' },
    rates: { type: 'string', default: '1600,2000,2400,2800,3200,4000,4800,6400,8000' },
    'rss-hosts': { type: 'string', default: '2000' },
    'rss-rate': { type: 'string', default: '3000' },
    rcvbuf: { type: 'string', default: String(4 * 1024 * 1024) },
  },
});
const RUNS = Number(args.runs);
const SECONDS = Number(args.seconds);
const HOSTS = Number(args.hosts);
const RATES = args.rates!.split(',').map(Number);
const RSS_HOSTS = Number(args['rss-hosts']);
const RSS_RATE = Number(args['rss-rate']);
const RCVBUF = Number(args.rcvbuf);
const POLL_MS = 250;
const SETTLED_MS = 2500;
const log = createLogger('warn', 'bench');
const ROOT = path.resolve(import.meta.dirname, '..');

interface Receiver {
  name: 'herd' | 'influxdb';
  port: number;
  pid: () => number;
  /** The InfluxDB process that stores what this receiver decodes (itself, for InfluxDB's listener). */
  storePid: () => number;
  influx: { url: string; db: string };
}

interface StepResult {
  rate: number;
  sent: number;
  valuesSent: number;
  bytesSent: number;
  sendSeconds: number;
  /** Packets per second the sender reached (sent / sendSeconds). */
  achievedRate: number;
  /** Worst delay of the sender behind its schedule. */
  senderMaxLagMs: number;
  senderCpuPercent: number;
  sendErrors: number;
  landed: Record<string, number>;
  /** When the last of the values landed, in ms after the last packet was sent (poll resolution POLL_MS). */
  landedAfterMs: Record<string, number>;
  loss: Record<string, number>;
  /** Datagrams the kernel dropped because the receiver's socket buffer was full. */
  kernelDrops: Record<string, number>;
  /** CPU of each receiving process while the sender was sending. */
  cpuPercent: Record<string, number>;
  /** herd's InfluxDB while the sender was sending (the store side of herd's path). */
  herdStoreCpuPercent?: number;
  /**
   * CPU of everything else on the machine while the sender was sending (other people's work on a shared
   * machine): high figures explain losses that are no receiver's own.
   */
  othersCpuPercent: number;
  /** All CPU from the first packet until the landed count settled, per second of sending. */
  cpuPercentWithTail: Record<string, number>;
  /** What InfluxDB's collectd service read from its socket (its own statistics). */
  influxdbBytesReceived?: number;
}

async function main() {
  const dir = await sharedTempDir('herd-bench-ingest-');
  const children: ChildProcess[] = [];
  const influxes: InfluxServer[] = [];
  let sender: Sender | undefined;
  let pg: EmbeddedDatabase | undefined;
  try {
    // Raise the kernel's cap on socket receive buffers where allowed (never lower it), for both alike.
    const rmemMax = Number(await readFile('/proc/sys/net/core/rmem_max', 'utf8').catch(() => '0'));
    if (rmemMax < RCVBUF)
      await writeFile('/proc/sys/net/core/rmem_max', String(RCVBUF)).catch(() => undefined);

    const listenerPort = await freePort();
    const influxListener = await createInflux(path.join(dir, 'influx-listener'), {
      extraConfig: `[[collectd]]
  enabled = true
  bind-address = "127.0.0.1:${listenerPort}"
  database = "collectd"
  typesdb = "/usr/share/collectd/types.db"
  security-level = "none"
  batch-size = 5000
  batch-pending = 10
  batch-timeout = "1s"
  read-buffer = ${RCVBUF}
`,
    });
    influxes.push(influxListener);
    await influxListener.start();
    const influxForHerd = await createInflux(path.join(dir, 'influx-herd'));
    influxes.push(influxForHerd);
    await influxForHerd.start();
    pg = await startEmbeddedPostgres(path.join(dir, 'postgres'), log, {
      fast: true,
      password: 'bench',
    });

    const herdPort = await freePort();
    const herd = spawn(
      process.execPath,
      [...herdNodeFlags(), path.join(ROOT, 'dist/app/cli.js'), 'serve', '--only', 'ingest'],
      {
        env: {
          ...process.env,
          HERD_DATA_DIR: path.join(dir, 'herd'),
          DATABASE_URL: pg.url,
          INFLUX_URL: influxForHerd.url,
          INFLUX_DB: 'collectd',
          HERD_COLLECTD_HOST: '127.0.0.1',
          HERD_COLLECTD_PORT: String(herdPort),
          HERD_COLLECTD_RCVBUF: String(RCVBUF),
          HERD_LOG_LEVEL: 'warn',
        },
        stdio: ['ignore', 'inherit', 'inherit'],
      },
    );
    children.push(herd);
    await waitForUdpReceiver(herd, herdPort);
    await waitForUdpReceiver(undefined, listenerPort);

    const influxPid = influxListener.pid;
    const receivers: Receiver[] = [
      {
        name: 'herd',
        port: herdPort,
        pid: () => herd.pid!,
        storePid: () => influxForHerd.pid()!,
        influx: { url: influxForHerd.url, db: 'collectd' },
      },
      {
        name: 'influxdb',
        port: listenerPort,
        pid: () => influxPid()!,
        storePid: () => influxPid()!,
        influx: { url: influxListener.url, db: 'collectd' },
      },
    ];
    // Both asked for RCVBUF; the kernel reports twice the size asked for (its bookkeeping overhead).
    const receiveBuffers = {
      herd: await udpReceiveBuffer(herdPort),
      influxdb: await udpReceiveBuffer(listenerPort),
    };
    console.log(
      `socket receive buffers (kernel's rb): herd ${receiveBuffers.herd}, influxdb ${receiveBuffers.influxdb}`,
    );
    const herdAtStart = await memory(herd.pid!);
    sender = await Sender.open(receivers.map((r) => r.port));

    console.log(`building replay traffic for ${Math.max(HOSTS, RSS_HOSTS)} hosts…`);
    const replayAll = buildReplay(Math.max(HOSTS, RSS_HOSTS));
    const hostsOf = (n: number): Replay => ({
      ...replayAll,
      hosts: n,
      packets: replayAll.packets.slice(0, n),
    });
    const replay = hostsOf(HOSTS);
    const valuesPerPacket = mean(replay.packets[0].map((p) => p.values));
    console.log(
      `${replay.packets[0].length} packets per host per replay, ${valuesPerPacket.toFixed(1)} values per packet`,
    );

    let stepIndex = 0;
    // herd's memory first, while it has seen nothing but RSS_HOSTS hosts sending at a steady rate: one
    // whole replay for each, so that every series of every host is in its live view. The first HOSTS of
    // them are the hosts of the steps below, so herd never hears of more than RSS_HOSTS hosts.
    const replayRss = hostsOf(RSS_HOSTS);
    const rssSender = await Sender.open([herdPort]);
    const rssSampler = sampleMemory(herd.pid!);
    const rssStep = await runStep(
      replayRss,
      rssSender,
      receivers.slice(0, 1),
      RSS_RATE,
      stepIndex++,
      RSS_HOSTS * replayRss.packets[0].length,
    );
    const herdRss = await rssSampler.stop();
    rssSender.close();
    console.log(
      `${RSS_HOSTS} hosts: ${rssStep.sent} packets at ${RSS_RATE}/s, herd loss ${(rssStep.loss.herd * 100).toFixed(2)}%, ` +
        `herd RSS ${herdRss.maxMiB} MiB at most while they sent, ${herdRss.lastMiB} MiB at the end`,
    );

    const runs: StepResult[][] = [];
    let bytesToHerd = rssStep.bytesSent;
    for (let run = 0; run < RUNS; run++) {
      const steps: StepResult[] = [];
      const lossy = { herd: 0, influxdb: 0 };
      for (const rate of RATES) {
        const step = await runStep(replay, sender, receivers, rate, stepIndex++);
        bytesToHerd += step.bytesSent;
        steps.push(step);
        console.log(
          `run ${run + 1} rate ${rate} pkt/s (${Math.round(rate * valuesPerPacket)} values/s, sent at ${step.achievedRate}/s, ` +
            `sender cpu ${step.senderCpuPercent}%): ` +
            receivers
              .map(
                (r) =>
                  `${r.name} loss ${(step.loss[r.name] * 100).toFixed(2)}% (kernel drops ${step.kernelDrops[r.name]}) ` +
                  `landed +${step.landedAfterMs[r.name]}ms cpu ${step.cpuPercent[r.name].toFixed(0)}% (${step.cpuPercentWithTail[r.name].toFixed(0)}% with tail)`,
              )
              .join(', ') +
            (step.influxdbBytesReceived !== step.bytesSent
              ? `, influxdb read ${step.influxdbBytesReceived} of ${step.bytesSent} bytes`
              : '') +
            `, herd's influxd cpu ${step.herdStoreCpuPercent?.toFixed(0)}%, others' cpu ${step.othersCpuPercent.toFixed(0)}%` +
            (step.sendErrors ? `, send errors ${step.sendErrors}` : ''),
        );
        for (const r of receivers) if (step.loss[r.name] > 0) lossy[r.name]++;
        if (lossy.herd >= 2 && lossy.influxdb >= 2) break;
      }
      runs.push(steps);
    }

    const highest = (name: string, steps: StepResult[]) => {
      let best = 0;
      for (const s of steps) {
        if (s.loss[name] > 0) break;
        best = s.rate;
      }
      return best;
    };
    const herdBest = median(runs.map((s) => highest('herd', s)));
    const influxBest = median(runs.map((s) => highest('influxdb', s)));

    // herd's CPU at InfluxDB's highest loss-free rate, and its memory with RSS_HOSTS hosts.
    const atInfluxRate = runs.flat().filter((s) => s.rate === influxBest);
    const herdCpuAtInfluxRate = median(atInfluxRate.map((s) => s.cpuPercent.herd));
    const herdCpuWithTailAtInfluxRate = median(atInfluxRate.map((s) => s.cpuPercentWithTail.herd));

    // Cross-check: herd's own count of the bytes it read equals what was sent to it, less kernel drops.
    const herdKernelDrops = runs.flat().reduce((n, s) => n + s.kernelDrops.herd, rssStep.kernelDrops.herd);
    const herdRead = await herdBytesReceived(receivers[0].influx, bytesToHerd);

    const result = {
      date: new Date().toISOString(),
      command: `npm run bench:ingest -- ${process.argv.slice(2).join(' ')}`.trim(),
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version },
      hosts: HOSTS,
      valuesPerPacket: Number(valuesPerPacket.toFixed(2)),
      secondsPerStep: SECONDS,
      runs: RUNS,
      receiveBuffers,
      highestLossFreePacketsPerSecond: { herd: herdBest, influxdb: influxBest },
      highestLossFreeValuesPerSecond: {
        herd: Math.round(herdBest * valuesPerPacket),
        influxdb: Math.round(influxBest * valuesPerPacket),
      },
      highestLossFreeByRun: runs.map((s) => ({ herd: highest('herd', s), influxdb: highest('influxdb', s) })),
      ratio: influxBest > 0 ? Number((herdBest / influxBest).toFixed(2)) : null,
      herdCpuPercentAtInfluxdbBestRate: herdCpuAtInfluxRate,
      herdCpuPercentWithTailAtInfluxdbBestRate: herdCpuWithTailAtInfluxRate,
      herdRssMiBAtStart: herdAtStart.rssMiB,
      herdRssMiBWith2000Hosts: herdRss.maxMiB,
      herdRssMiBAfter2000Hosts: herdRss.lastMiB,
      rssStep: { hosts: RSS_HOSTS, ...rssStep },
      check: { bytesSentToHerd: bytesToHerd, herdBytesReceived: herdRead, herdKernelDrops },
      steps: runs,
    };
    await mkdir(path.join(ROOT, 'bench/results'), { recursive: true });
    await writeFile(path.join(ROOT, 'bench/results/ingest.json'), `${JSON.stringify(result, null, 2)}\n`);
    console.log(JSON.stringify({ ...result, steps: undefined, rssStep: undefined }, null, 2));
  } finally {
    sender?.close();
    // herd first, while its InfluxDB still answers (it flushes on the way out; a profile is written at exit).
    await Promise.all(children.map((c) => stopChild(c)));
    await pg?.stop();
    for (const i of influxes) await i.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const force = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Samples a process's resident memory every 250 ms until stopped; answers the largest and the last. */
function sampleMemory(pid: number) {
  let maxMiB = 0;
  let lastMiB = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      lastMiB = (await memory(pid)).rssMiB;
      maxMiB = Math.max(maxMiB, lastMiB);
      await sleep(250);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { maxMiB, lastMiB };
    },
  };
}

/** Extra node flags for herd's process, e.g. HERD_BENCH_NODE_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof". */
function herdNodeFlags(): string[] {
  return (process.env.HERD_BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
}

/**
 * One connected UDP socket per receiver. A connected socket sends synchronously (no address lookup
 * deferred to the next tick), so every packet is copied into both receivers' socket buffers before the
 * next packet is stamped: both get the identical bytes, in the same order, at the same moment.
 */
class Sender {
  private constructor(private readonly sockets: dgram.Socket[]) {}

  static async open(ports: number[]): Promise<Sender> {
    const sockets = await Promise.all(
      ports.map(
        (port) =>
          new Promise<dgram.Socket>((resolve, reject) => {
            const socket = dgram.createSocket({ type: 'udp4', sendBufferSize: 4 * 1024 * 1024 });
            socket.once('error', reject);
            socket.connect(port, '127.0.0.1', () => {
              socket.off('error', reject);
              resolve(socket);
            });
          }),
      ),
    );
    return new Sender(sockets);
  }

  errors = 0;

  send(bytes: Buffer): void {
    for (const s of this.sockets) s.send(bytes, (err) => err && this.errors++);
  }

  close(): void {
    for (const s of this.sockets) s.close();
  }
}

interface SendOptions {
  rate: number;
  packets: number;
  base: number;
}

/** Sends `packets` packets of the replay at `rate` per second, paced on the clock (catching up after a late tick). */
async function send(replay: Replay, sender: Sender, o: SendOptions) {
  const perHost = replay.packets[0].length;
  let values = 0;
  let bytes = 0;
  let sent = 0;
  let maxLagMs = 0;
  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  await new Promise<void>((resolve) => {
    const tick = () => {
      const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
      const due = Math.min(o.packets, Math.floor(elapsed * o.rate));
      maxLagMs = Math.max(maxLagMs, ((due - sent) / o.rate) * 1000);
      while (sent < due) {
        const host = sent % replay.hosts;
        const round = Math.floor(sent / replay.hosts);
        const p = replay.packets[host][round % perHost];
        const cycle = Math.floor(round / perHost);
        sender.send(stampTimes(p, o.base + cycle * replay.span));
        values += p.values;
        bytes += p.bytes.length;
        sent++;
      }
      if (sent >= o.packets) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const used = process.cpuUsage(cpu);
  return {
    sent,
    values,
    bytes,
    seconds,
    achievedRate: Math.round(sent / seconds),
    maxLagMs: Number(maxLagMs.toFixed(1)),
    senderCpuPercent: Number((((used.user + used.system) / 1e6 / seconds) * 100).toFixed(1)),
  };
}

async function runStep(
  replay: Replay,
  sender: Sender,
  receivers: Receiver[],
  rate: number,
  stepIndex: number,
  packets = rate * SECONDS,
): Promise<StepResult> {
  // Each step gets a time range of its own, far enough from the others that its points are told apart.
  const base = Math.floor(Date.now() / 1000) - 36 * 3600 + stepIndex * 2000;
  const errorsBefore = sender.errors;
  const dropsBefore = await Promise.all(receivers.map((r) => udpDrops(r.port)));
  const rxBefore = await listenerBytes(receivers);
  const pids = [...new Set(receivers.flatMap((r) => [r.pid(), r.storePid()]))];
  const ticksBefore = await Promise.all([machineBusyTicks(), ...pids.map(cpuTicks)]);
  const cpuBefore = await Promise.all(receivers.map((r) => cpuTicks(r.pid())));
  const s = await send(replay, sender, { rate, packets, base });
  const cpuAfter = await Promise.all(receivers.map((r) => cpuTicks(r.pid())));
  const ticksAfter = await Promise.all([machineBusyTicks(), ...pids.map(cpuTicks)]);
  const percent = (ticks: number) => round1((ticks / CLOCK_TICKS / s.seconds) * 100);
  const used = ticksAfter.map((t, i) => t - ticksBefore[i]);
  const ours = used.slice(1).reduce((a, b) => a + b, 0);

  const out: StepResult = {
    rate,
    sent: s.sent,
    valuesSent: s.values,
    bytesSent: s.bytes,
    sendSeconds: Number(s.seconds.toFixed(2)),
    achievedRate: s.achievedRate,
    senderMaxLagMs: s.maxLagMs,
    senderCpuPercent: s.senderCpuPercent,
    sendErrors: 0,
    landed: {},
    landedAfterMs: {},
    loss: {},
    kernelDrops: {},
    cpuPercent: {},
    cpuPercentWithTail: {},
    othersCpuPercent: Math.max(0, round1(percent(used[0] - ours) - s.senderCpuPercent)),
  };
  const herdStore = receivers.find((r) => r.name === 'herd')?.storePid();
  if (herdStore !== undefined) out.herdStoreCpuPercent = percent(used[1 + pids.indexOf(herdStore)]);
  const sendEnded = Date.now();
  await Promise.all(
    receivers.map(async (r, i) => {
      const settled = await settledCount(r.influx, base, base + 1000, sendEnded);
      out.landed[r.name] = settled.count;
      out.landedAfterMs[r.name] = settled.lagMs;
      out.loss[r.name] = s.values > 0 ? Math.max(0, 1 - out.landed[r.name] / s.values) : 0;
      out.cpuPercent[r.name] = round1(((cpuAfter[i] - cpuBefore[i]) / CLOCK_TICKS / s.seconds) * 100);
    }),
  );
  // All the CPU the step cost, including work finished after the last packet, per second of sending.
  const cpuSettled = await Promise.all(receivers.map((r) => cpuTicks(r.pid())));
  const dropsAfter = await Promise.all(receivers.map((r) => udpDrops(r.port)));
  receivers.forEach((r, i) => {
    out.cpuPercentWithTail[r.name] = round1(((cpuSettled[i] - cpuBefore[i]) / CLOCK_TICKS / s.seconds) * 100);
    out.kernelDrops[r.name] = dropsAfter[i] - dropsBefore[i];
  });
  const rxAfter = await listenerBytes(receivers);
  if (rxBefore !== undefined && rxAfter !== undefined) out.influxdbBytesReceived = rxAfter - rxBefore;
  out.sendErrors = sender.errors - errorsBefore;
  return out;
}

/** Bytes InfluxDB's collectd service has read from its socket (its own `SHOW STATS`), if it is a receiver. */
async function listenerBytes(receivers: Receiver[]): Promise<number | undefined> {
  const influx = receivers.find((r) => r.name === 'influxdb')?.influx;
  if (!influx) return undefined;
  const res = await fetch(`${influx.url}/query?q=${encodeURIComponent("SHOW STATS FOR 'collectd'")}`);
  const body = (await res.json()) as {
    results: Array<{ series?: Array<{ columns: string[]; values: number[][] }> }>;
  };
  const series = body.results[0]?.series?.[0];
  if (!series) return 0;
  return series.values[0][series.columns.indexOf('bytesRx')] ?? 0;
}

/** herd's own count of bytes received (its self-metrics, written to its store every 10 s). */
async function herdBytesReceived(
  influx: { url: string; db: string },
  expected: number,
): Promise<number | null> {
  let last: number | null = null;
  const deadline = Date.now() + 25_000;
  while (Date.now() < deadline) {
    const q = 'SELECT last(collectd_bytes_received) FROM herd';
    const res = await fetch(`${influx.url}/query?db=${influx.db}&q=${encodeURIComponent(q)}`);
    const body = (await res.json()) as { results: Array<{ series?: Array<{ values: number[][] }> }> };
    last = body.results[0]?.series?.[0]?.values[0]?.[1] ?? last;
    if (last !== null && last >= expected) return last;
    await sleep(1000);
  }
  return last;
}

/**
 * Counts the values stored between two times, polling until the count stops growing. Also says how long
 * after the last packet was sent the final count was first seen: a receiver that keeps up needs about
 * its batch timeout; one that falls behind needs longer, however large its socket buffer.
 */
async function settledCount(
  influx: { url: string; db: string },
  from: number,
  to: number,
  sendEnded: number,
) {
  let count = -1;
  let lastChange = Date.now();
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const q = `SELECT count(value) FROM /.*/ WHERE time >= ${from}s AND time < ${to}s`;
    const res = await fetch(`${influx.url}/query?db=${influx.db}&q=${encodeURIComponent(q)}`);
    const body = (await res.json()) as { results: Array<{ series?: Array<{ values: number[][] }> }> };
    const now = (body.results[0]?.series ?? []).reduce((sum, s) => sum + (s.values[0]?.[1] ?? 0), 0);
    if (now !== count) {
      count = now;
      lastChange = Date.now();
    } else if (Date.now() - lastChange > SETTLED_MS) {
      break;
    }
    await sleep(POLL_MS);
  }
  return { count, lagMs: Math.max(0, lastChange - sendEnded) };
}

/** Waits until a receiver has bound its UDP port (herd binds after its migrations). */
async function waitForUdpReceiver(child: ChildProcess | undefined, port: number) {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) throw new Error(`herd exited with ${child.exitCode}`);
    if (await udpBound(port)) return;
    await sleep(250);
  }
  throw new Error(`nothing listens on UDP port ${port} after 60 s`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round1 = (x: number) => Number(x.toFixed(1));
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
