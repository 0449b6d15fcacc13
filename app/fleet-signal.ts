import { createHash } from 'node:crypto';
import { valueListToPoints } from '../ingest/points.js';
import type { DsType, Point, ValueList } from '../ingest/types.js';

/** A simulated host, as collectd's cpu, memory, load, interface and disk plugins would report it. */
export interface SimulatedHost {
  name: string;
  cpus: number;
  memoryMiB: number;
}

/** A simulated guest, as collectd's virt plugin reports it with `HostnameFormat uuid`. */
export interface SimulatedGuest {
  uuid: string;
  vcpus: number;
  memoryMiB: number;
}

/** A value list with its value names (from types.db), ready for the encoder or for points. */
export interface NamedValueList {
  vl: ValueList;
  names: readonly string[];
}

const MiB = 1024 * 1024;
const TAU = 2 * Math.PI;

/**
 * 1 + a·sin(ωt + φ) + b·sin(ω't + φ'), between 1 − a − b and 1 + a + b, and its integral in closed form: counters
 * are integrals of rates, so a counter at any time is known without stepping through the past, and a backfill
 * and the live traffic after it agree.
 */
class Wave {
  private readonly a: number;
  private readonly b: number;
  private readonly w1: number;
  private readonly w2: number;
  private readonly p1: number;
  private readonly p2: number;

  constructor(seed: string) {
    const h = createHash('sha256').update(seed).digest();
    const unit = (i: number) => h.readUInt16BE(i) / 65_535;
    this.a = 0.35 + 0.25 * unit(0);
    this.b = 0.1 + 0.1 * unit(2);
    this.w1 = TAU / (1800 + 5400 * unit(4));
    this.w2 = TAU / (120 + 300 * unit(6));
    this.p1 = TAU * unit(8);
    this.p2 = TAU * unit(10);
  }

  at(t: number): number {
    return 1 + this.a * Math.sin(this.w1 * t + this.p1) + this.b * Math.sin(this.w2 * t + this.p2);
  }

  integral(t: number): number {
    return (
      t -
      (this.a / this.w1) * Math.cos(this.w1 * t + this.p1) -
      (this.b / this.w2) * Math.cos(this.w2 * t + this.p2)
    );
  }
}

const waves = new Map<string, Wave>();
function wave(seed: string): Wave {
  const w = waves.get(seed) ?? new Wave(seed);
  waves.set(seed, w);
  return w;
}

function vl(
  host: string,
  plugin: string,
  pluginInstance: string,
  type: string,
  typeInstance: string,
  time: number,
  interval: number,
  dsTypes: DsType[],
  values: number[],
  names: readonly string[],
): NamedValueList {
  return {
    vl: {
      host,
      plugin,
      pluginInstance,
      type,
      typeInstance,
      time,
      interval,
      dsTypes,
      values: values.map((v) => (dsTypes[0] === 'gauge' ? v : Math.floor(v))),
    },
    names,
  };
}

const VALUE = ['value'];
/** A guest's vCPUs are about this busy (times the wave). */
const GUEST_CPU_SHARE = 0.3;
const LOAD = ['shortterm', 'midterm', 'longterm'];
const IF = ['rx', 'tx'];
const DISK = ['read', 'write'];

/** Each host idles around its own level (0.05–0.5); busy share = level · wave (0.2–1.8), below 1. */
function hostLevel(host: SimulatedHost): number {
  return 0.05 + (0.45 * (wave(`${host.name}/level`).at(0) - 0.2)) / 1.6;
}

/** What a host's collectd sends at `time`: CPU jiffies per CPU and state, memory, load, eth0 and lo, one disk. */
export function hostValueLists(host: SimulatedHost, time: number, interval = 10): NamedValueList[] {
  const out: NamedValueList[] = [];
  const level = hostLevel(host);
  let busyNow = 0;
  for (let cpu = 0; cpu < host.cpus; cpu++) {
    const w = wave(`${host.name}/cpu${cpu}`);
    const busy = level * w.integral(time);
    busyNow += level * w.at(time);
    const jiffies = (state: string, value: number) =>
      out.push(vl(host.name, 'cpu', String(cpu), 'cpu', state, time, interval, ['derive'], [value], VALUE));
    jiffies('user', 100 * 0.7 * busy);
    jiffies('system', 100 * 0.25 * busy);
    jiffies('wait', 100 * 0.05 * busy);
    jiffies('idle', 100 * (time - busy));
  }
  const busyShare = busyNow / host.cpus;
  const total = host.memoryMiB * MiB;
  const used = total * (0.25 + 0.3 * busyShare);
  const cached = total * 0.2;
  const buffered = total * 0.03;
  for (const [kind, bytes] of [
    ['used', used],
    ['buffered', buffered],
    ['cached', cached],
    ['free', total - used - cached - buffered],
  ] as const) {
    out.push(vl(host.name, 'memory', '', 'memory', kind, time, interval, ['gauge'], [bytes], VALUE));
  }
  const load = host.cpus * busyShare;
  out.push(
    vl(
      host.name,
      'load',
      '',
      'load',
      '',
      time,
      interval,
      ['gauge', 'gauge', 'gauge'],
      [load * 1.05, load, load * 0.95],
      LOAD,
    ),
  );
  const net = wave(`${host.name}/net`);
  const nic = (name: string, rx: number, tx: number) =>
    out.push(
      vl(
        host.name,
        'interface',
        name,
        'if_octets',
        '',
        time,
        interval,
        ['derive', 'derive'],
        [rx * net.integral(time), tx * net.integral(time)],
        IF,
      ),
    );
  nic('eth0', 3 * MiB * level, 1 * MiB * level);
  nic('lo', 20_000, 20_000);
  const disk = wave(`${host.name}/disk`);
  out.push(
    vl(
      host.name,
      'disk',
      'sda',
      'disk_octets',
      '',
      time,
      interval,
      ['derive', 'derive'],
      [2 * MiB * level * disk.integral(time), 5 * MiB * level * disk.integral(time)],
      DISK,
    ),
  );
  return out;
}

/** A guest's resident memory: a third to a half of what it was given, with its CPU wave. */
function guestRssMiB(guest: SimulatedGuest, time: number): number {
  return guest.memoryMiB * (0.3 + 0.2 * wave(`${guest.uuid}/cpu`).at(time));
}

/** What the virt plugin sends for a running guest at `time`: CPU time, memory, disk and network bytes. */
export function guestValueLists(guest: SimulatedGuest, time: number, interval = 10): NamedValueList[] {
  const cpu = wave(`${guest.uuid}/cpu`);
  const io = wave(`${guest.uuid}/io`);
  const share = GUEST_CPU_SHARE;
  const host = guest.uuid;
  return [
    vl(
      host,
      'virt',
      '',
      'virt_cpu_total',
      '',
      time,
      interval,
      ['derive'],
      [guest.vcpus * 1e9 * share * cpu.integral(time)],
      VALUE,
    ),
    vl(host, 'virt', '', 'memory', 'total', time, interval, ['gauge'], [guest.memoryMiB * MiB], VALUE),
    vl(host, 'virt', '', 'memory', 'rss', time, interval, ['gauge'], [guestRssMiB(guest, time) * MiB], VALUE),
    vl(
      host,
      'virt',
      '',
      'disk_octets',
      'vda',
      time,
      interval,
      ['derive', 'derive'],
      [400_000 * io.integral(time), 900_000 * io.integral(time)],
      DISK,
    ),
    vl(
      host,
      'virt',
      '',
      'if_octets',
      'vnet0',
      time,
      interval,
      ['derive', 'derive'],
      [600_000 * io.integral(time), 250_000 * io.integral(time)],
      IF,
    ),
  ];
}

/**
 * What herd's graph recorder writes for the host at `time` (api/metrics/graph-recorder.ts, fields
 * HOST_FIELDS), from the rates of hostValueLists, for benchmarks that need days of it at once.
 */
export function hostFigures(host: SimulatedHost, time: number): Point {
  const level = hostLevel(host);
  let busy = 0;
  for (let cpu = 0; cpu < host.cpus; cpu++) busy += level * wave(`${host.name}/cpu${cpu}`).at(time);
  const share = busy / host.cpus;
  const net = wave(`${host.name}/net`).at(time);
  const disk = wave(`${host.name}/disk`).at(time);
  return {
    measurement: 'herd_host',
    tags: { host: host.name },
    fields: {
      cpu_busy_cores: busy,
      cpu_count: host.cpus,
      load1: host.cpus * share * 1.05,
      load5: host.cpus * share,
      load15: host.cpus * share * 0.95,
      mem_used: host.memoryMiB * (0.25 + 0.3 * share),
      mem_buffered: host.memoryMiB * 0.03,
      mem_cached: host.memoryMiB * 0.2,
      mem_free: host.memoryMiB * (0.52 - 0.3 * share),
      net_rx: 3 * MiB * level * net,
      net_tx: 1 * MiB * level * net,
      disk_read: 2 * MiB * level * disk,
      disk_write: 5 * MiB * level * disk,
    },
    time,
  };
}

/** What herd's graph recorder writes for a running guest at `time` (fields GUEST_FIELDS). */
export function guestFigures(guest: SimulatedGuest, time: number): Point {
  const cpu = wave(`${guest.uuid}/cpu`).at(time);
  const io = wave(`${guest.uuid}/io`).at(time);
  return {
    measurement: 'herd_guest',
    tags: { host: guest.uuid },
    fields: {
      cpu_percent: 100 * GUEST_CPU_SHARE * guest.vcpus * cpu,
      mem: guest.memoryMiB,
      mem_used: guestRssMiB(guest, time),
      disk_read: 400_000 * io,
      disk_write: 900_000 * io,
      net_rx: 600_000 * io,
      net_tx: 250_000 * io,
    },
    time,
  };
}

/** The points herd's ingest would store for these value lists (InfluxDB's collectd naming). */
export function toPoints(lists: NamedValueList[], mode: 'split' | 'join' = 'split'): Point[] {
  const out: Point[] = [];
  for (const { vl: list, names } of lists) valueListToPoints(list, names, mode, out);
  return out;
}
