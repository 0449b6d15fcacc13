/**
 * End to end, side by side in one run: herd versus InfluxDB's own collectd listener, the same replayed
 * traffic (the plain fixture capture rewritten for N hosts) sent to both at increasing rates.
 * For each rate and each receiver: values sent, values landed in InfluxDB, loss, CPU of the receiving
 * process. Reports the highest loss-free rate of each (median over runs) and their ratio, herd's RSS with
 * 2,000 hosts, and writes bench/results/ingest.json.
 *
 *   npm run bench:ingest [-- --runs 3 --seconds 6 --hosts 1000]
 *
 * herd runs as its own process (`herd serve --only ingest`) writing to an influxd of its own; InfluxDB's
 * listener is a `[[collectd]]` section in another influxd. The sender runs in this process.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, startEmbeddedPostgres } from '../lib/embedded-postgres.js';
import { createLogger } from '../lib/log.js';
import { createInflux, type InfluxServer } from '../lib/testing/influxd.js';
import { buildReplay, type Replay, stampTimes } from './lib/replay.js';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '6' },
    hosts: { type: 'string', default: '1000' },
    rates: { type: 'string', default: '1000,1400,1800,2200,2700,3200,3800,4500,5500,6500' },
  },
});
const RUNS = Number(args.runs);
const SECONDS = Number(args.seconds);
const HOSTS = Number(args.hosts);
const RATES = args.rates!.split(',').map(Number);
const RCVBUF = 16 * 1024 * 1024;
const log = createLogger('warn', 'bench');

interface Receiver {
  name: 'herd' | 'influxdb';
  port: number;
  pid: () => number;
  influx: { url: string; db: string };
}

interface StepResult {
  rate: number;
  sent: number;
  valuesSent: number;
  landed: Record<string, number>;
  loss: Record<string, number>;
  cpuPercent: Record<string, number>;
  sendErrors: number;
}

async function main() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'herd-bench-ingest-'));
  const children: ChildProcess[] = [];
  const influxes: InfluxServer[] = [];
  try {
    // Raise the kernel's cap on socket receive buffers where allowed, for both receivers alike.
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
    const pg = await startEmbeddedPostgres(path.join(dir, 'postgres'), log, { fast: true, password: 'bench' });

    const herdPort = await freePort();
    const herd = spawn(process.execPath, ['dist/lib/cli.js', 'serve', '--only', 'ingest'], {
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
    });
    children.push(herd);
    await waitForUdpReceiver(herd, herdPort);

    const influxPid = influxListener.pid;
    const receivers: Receiver[] = [
      { name: 'herd', port: herdPort, pid: () => herd.pid!, influx: { url: influxForHerd.url, db: 'collectd' } },
      { name: 'influxdb', port: listenerPort, pid: () => influxPid()!, influx: { url: influxListener.url, db: 'collectd' } },
    ];

    console.log(`building replay traffic for ${HOSTS} hosts…`);
    const replay = buildReplay(HOSTS);
    const valuesPerPacket = mean(replay.packets[0].map((p) => p.values));
    console.log(`${replay.packets[0].length} packets per host per replay, ${valuesPerPacket.toFixed(1)} values per packet`);

    const runs: StepResult[][] = [];
    let stepIndex = 0;
    for (let run = 0; run < RUNS; run++) {
      const steps: StepResult[] = [];
      const lossy = { herd: 0, influxdb: 0 };
      for (const rate of RATES) {
        const step = await runStep(replay, receivers, rate, stepIndex++);
        steps.push(step);
        console.log(
          `run ${run + 1} rate ${rate} pkt/s (${Math.round(rate * valuesPerPacket)} values/s): ` +
            receivers
              .map((r) => `${r.name} loss ${(step.loss[r.name] * 100).toFixed(2)}% cpu ${step.cpuPercent[r.name].toFixed(0)}%`)
              .join(', ') +
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

    // herd's CPU at InfluxDB's highest loss-free rate, and its memory with 2,000 hosts.
    const atInfluxRate = runs.flat().filter((s) => s.rate === influxBest);
    const herdCpuAtInfluxRate = median(atInfluxRate.map((s) => s.cpuPercent.herd));
    console.log('building replay traffic for 2000 hosts…');
    const replay2000 = buildReplay(2000, (i) => `rss-host-${String(i).padStart(5, '0')}`);
    await runStep(replay2000, receivers.slice(0, 1), 2000, stepIndex++);
    const rssMiB = await rss(herd.pid!);

    const result = {
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version },
      hosts: HOSTS,
      valuesPerPacket: Number(valuesPerPacket.toFixed(2)),
      secondsPerStep: SECONDS,
      runs: RUNS,
      highestLossFreePacketsPerSecond: { herd: herdBest, influxdb: influxBest },
      highestLossFreeValuesPerSecond: {
        herd: Math.round(herdBest * valuesPerPacket),
        influxdb: Math.round(influxBest * valuesPerPacket),
      },
      ratio: influxBest > 0 ? Number((herdBest / influxBest).toFixed(2)) : null,
      herdCpuPercentAtInfluxdbBestRate: herdCpuAtInfluxRate,
      herdRssMiBWith2000Hosts: rssMiB,
      steps: runs,
    };
    await mkdir('bench/results', { recursive: true });
    await writeFile('bench/results/ingest.json', `${JSON.stringify(result, null, 2)}\n`);
    console.log(JSON.stringify({ ...result, steps: undefined }, null, 2));
    await pg.stop();
  } finally {
    for (const c of children) c.kill('SIGTERM');
    for (const i of influxes) await i.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

async function runStep(replay: Replay, receivers: Receiver[], rate: number, stepIndex: number): Promise<StepResult> {
  const base = Math.floor(Date.now() / 1000) - 36 * 3600 + stepIndex * 2000;
  const total = rate * SECONDS;
  const perPacketList = replay.packets[0].length;
  const socket = dgram.createSocket('udp4');
  socket.setSendBufferSize(8 * 1024 * 1024);
  let sendErrors = 0;
  let valuesSent = 0;
  const cpuBefore = await Promise.all(receivers.map((r) => cpuTicks(r.pid())));
  const started = process.hrtime.bigint();
  let sent = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
      const due = Math.min(total, Math.floor(elapsed * rate));
      while (sent < due) {
        const host = sent % replay.hosts;
        const round = Math.floor(sent / replay.hosts);
        const p = replay.packets[host][round % perPacketList];
        const cycle = Math.floor(round / perPacketList);
        const bytes = stampTimes(p, base + cycle * replay.span);
        valuesSent += p.values;
        for (const r of receivers) socket.send(bytes, r.port, '127.0.0.1', (err) => err && sendErrors++);
        sent++;
      }
      if (sent >= total) resolve();
      else setTimeout(tick, 2);
    };
    tick();
  });
  const cpuAfter = await Promise.all(receivers.map((r) => cpuTicks(r.pid())));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  socket.close();

  const landed: Record<string, number> = {};
  const loss: Record<string, number> = {};
  const cpuPercent: Record<string, number> = {};
  await Promise.all(
    receivers.map(async (r, i) => {
      landed[r.name] = await settledCount(r.influx, base, base + 1000);
      loss[r.name] = valuesSent > 0 ? Math.max(0, 1 - landed[r.name] / valuesSent) : 0;
      cpuPercent[r.name] = ((cpuAfter[i] - cpuBefore[i]) / CLOCK_TICKS / seconds) * 100;
    }),
  );
  return { rate, sent, valuesSent, landed, loss, cpuPercent, sendErrors };
}

const CLOCK_TICKS = 100;

/** Counts the values stored between two times, waiting until the count stops growing. */
async function settledCount(influx: { url: string; db: string }, from: number, to: number): Promise<number> {
  let last = -1;
  let stableSince = Date.now();
  const deadline = Date.now() + 30_000;
  await sleep(1500);
  while (Date.now() < deadline) {
    const q = `SELECT count(value) FROM /.*/ WHERE time >= ${from}s AND time < ${to}s`;
    const res = await fetch(`${influx.url}/query?db=${influx.db}&q=${encodeURIComponent(q)}`);
    const body = (await res.json()) as { results: Array<{ series?: Array<{ values: number[][] }> }> };
    const count = (body.results[0]?.series ?? []).reduce((sum, s) => sum + (s.values[0]?.[1] ?? 0), 0);
    if (count !== last) {
      last = count;
      stableSince = Date.now();
    } else if (Date.now() - stableSince > 2500) {
      return count;
    }
    await sleep(500);
  }
  return last;
}

async function cpuTicks(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

async function rss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

/** Waits until herd's process has bound its UDP port (it binds after migrations). */
async function waitForUdpReceiver(child: ChildProcess, port: number) {
  const needle = `:${port.toString(16).toUpperCase().padStart(4, '0')} `;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`herd exited with ${child.exitCode}`);
    const table = await readFile('/proc/net/udp', 'utf8').catch(() => '');
    if (table.split('\n').some((line) => line.split(/\s+/)[2]?.endsWith(needle.trim()))) return;
    await sleep(250);
  }
  throw new Error('herd did not start within 60 s');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
