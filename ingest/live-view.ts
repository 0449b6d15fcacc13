import type { DsType, ValueList } from './types.js';

/** What quota, placement, the dashboard and alerting read about a host right now. */
export interface HostLiveSummary {
  /** Arrival time of the last value list from this host (ms since the epoch, herd's clock). */
  lastSeen: number;
  /** The host's collectd interval in seconds. */
  interval: number;
  load1?: number;
  load5?: number;
  load15?: number;
  memoryFreeMiB?: number;
  memoryUsedMiB?: number;
  /** Busy share of all CPUs over the last interval, 0–100. */
  cpuBusyPercent?: number;
  /** Number of CPUs seen in the cpu plugin. */
  cpuCount?: number;
}

/** A guest's latest figures from the virt plugin (host part = the domain's UUID with HostnameFormat uuid). */
export interface GuestLiveSummary {
  lastSeen: number;
  interval: number;
  /** Share of one CPU used by the guest over the last interval, 0–100 × vCPUs. */
  cpuPercent?: number;
  memoryMiB?: number;
  diskReadBytesPerSec?: number;
  diskWriteBytesPerSec?: number;
  netRxBytesPerSec?: number;
  netTxBytesPerSec?: number;
}

export interface LiveSeries {
  plugin: string;
  pluginInstance: string;
  type: string;
  typeInstance: string;
  names: readonly string[];
  dsTypes: readonly DsType[];
  /** Latest values (doubles). */
  values: number[];
  /** Per-second rates for counter/derive values (gauge/absolute: null), from the last two samples. */
  rates: Array<number | null>;
  /** Sample time (s, the host's clock). */
  time: number;
}

interface HostEntry {
  lastSeen: number;
  interval: number;
  series: Map<string, LiveSeries>;
  summary: HostLiveSummary | undefined;
}

/**
 * The latest value of every series per host and guest, kept in memory from what arrives, with rates for
 * counters and derives. Summaries are computed lazily and cached until the host's next value list.
 */
export class LiveView {
  private readonly hosts = new Map<string, HostEntry>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Records one value list (copied: the decoder reuses its objects); `names` come from types.db. */
  update(vl: ValueList, names: readonly string[]): void {
    let host = this.hosts.get(vl.host);
    if (!host) {
      host = { lastSeen: 0, interval: vl.interval, series: new Map(), summary: undefined };
      this.hosts.set(vl.host, host);
    }
    host.lastSeen = this.now();
    if (vl.interval > 0) host.interval = vl.interval;
    host.summary = undefined;

    const key = `${vl.plugin}/${vl.pluginInstance}/${vl.type}/${vl.typeInstance}`;
    const previous = host.series.get(key);
    const values = vl.values.map(Number);
    const rates: Array<number | null> = vl.dsTypes.map((ds, i) => {
      if (ds !== 'counter' && ds !== 'derive') return null;
      if (!previous || vl.time <= previous.time) return null;
      const delta = values[i] - previous.values[i];
      // A counter that went backwards was reset (or wrapped): no rate for this sample.
      return delta < 0 ? null : delta / (vl.time - previous.time);
    });
    host.series.set(key, {
      plugin: vl.plugin,
      pluginInstance: vl.pluginInstance,
      type: vl.type,
      typeInstance: vl.typeInstance,
      names,
      dsTypes: previous && sameTypes(previous.dsTypes, vl.dsTypes) ? previous.dsTypes : [...vl.dsTypes],
      values,
      rates,
      time: vl.time,
    });
  }

  hostNames(): string[] {
    return [...this.hosts.keys()];
  }

  lastSeen(host: string): number | undefined {
    return this.hosts.get(host)?.lastSeen;
  }

  series(host: string): LiveSeries[] {
    return [...(this.hosts.get(host)?.series.values() ?? [])];
  }

  /** One series' latest sample, or undefined. */
  get(host: string, plugin: string, pluginInstance: string, type: string, typeInstance = ''): LiveSeries | undefined {
    return this.hosts.get(host)?.series.get(`${plugin}/${pluginInstance}/${type}/${typeInstance}`);
  }

  hostSummary(host: string): HostLiveSummary | undefined {
    const entry = this.hosts.get(host);
    if (!entry) return undefined;
    entry.summary ??= summarizeHost(entry);
    return entry.summary;
  }

  guestSummary(uuid: string): GuestLiveSummary | undefined {
    const entry = this.hosts.get(uuid);
    if (!entry) return undefined;
    const out: GuestLiveSummary = { lastSeen: entry.lastSeen, interval: entry.interval };
    for (const s of entry.series.values()) {
      if (s.plugin !== 'virt') continue;
      if (s.type === 'virt_cpu_total' && s.rates[0] != null) out.cpuPercent = (s.rates[0] / 1e9) * 100;
      else if (s.type === 'memory' && s.typeInstance === 'total') out.memoryMiB = s.values[0] / MiB;
      else if (s.type === 'disk_octets') {
        out.diskReadBytesPerSec = (out.diskReadBytesPerSec ?? 0) + (s.rates[0] ?? 0);
        out.diskWriteBytesPerSec = (out.diskWriteBytesPerSec ?? 0) + (s.rates[1] ?? 0);
      } else if (s.type === 'if_octets') {
        out.netRxBytesPerSec = (out.netRxBytesPerSec ?? 0) + (s.rates[0] ?? 0);
        out.netTxBytesPerSec = (out.netTxBytesPerSec ?? 0) + (s.rates[1] ?? 0);
      }
    }
    return out;
  }

  /** Forgets hosts not heard from for `maxAgeMs` (bounded memory when hosts come and go). */
  prune(maxAgeMs: number): number {
    const cutoff = this.now() - maxAgeMs;
    let removed = 0;
    for (const [name, entry] of this.hosts) {
      if (entry.lastSeen < cutoff) {
        this.hosts.delete(name);
        removed++;
      }
    }
    return removed;
  }

  get size(): number {
    return this.hosts.size;
  }
}

const MiB = 1024 * 1024;

function sameTypes(a: readonly DsType[], b: readonly DsType[]): boolean {
  return a.length === b.length && a.every((t, i) => t === b[i]);
}
const IDLE_STATES = new Set(['idle']);

function summarizeHost(entry: HostEntry): HostLiveSummary {
  const out: HostLiveSummary = { lastSeen: entry.lastSeen, interval: entry.interval };
  let cpuTotal = 0;
  let cpuIdle = 0;
  let cpuPercentSum = 0;
  let cpuPercentIdle = 0;
  const cpus = new Set<string>();
  for (const s of entry.series.values()) {
    if (s.plugin === 'load' && s.type === 'load') {
      [out.load1, out.load5, out.load15] = s.values;
    } else if (s.plugin === 'memory' && s.type === 'memory') {
      if (s.typeInstance === 'free') out.memoryFreeMiB = s.values[0] / MiB;
      else if (s.typeInstance === 'used') out.memoryUsedMiB = s.values[0] / MiB;
    } else if (s.plugin === 'cpu') {
      cpus.add(s.pluginInstance);
      if (s.type === 'cpu' && s.rates[0] != null) {
        // jiffies per second per state (the cpu plugin's default)
        cpuTotal += s.rates[0];
        if (IDLE_STATES.has(s.typeInstance)) cpuIdle += s.rates[0];
      } else if (s.type === 'percent') {
        // ValuesPercentage true
        cpuPercentSum += s.values[0];
        if (IDLE_STATES.has(s.typeInstance)) cpuPercentIdle += s.values[0];
      }
    }
  }
  if (cpuTotal > 0) out.cpuBusyPercent = (1 - cpuIdle / cpuTotal) * 100;
  else if (cpuPercentSum > 0) out.cpuBusyPercent = (1 - cpuPercentIdle / cpuPercentSum) * 100;
  if (cpus.size > 0) out.cpuCount = cpus.has('') ? Math.max(cpus.size - 1, 1) : cpus.size;
  return out;
}
