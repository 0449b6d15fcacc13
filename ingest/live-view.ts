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
  /**
   * Memory the guest uses: `available − unused` where the guest's balloon driver reports them (its own
   * view, page cache counted as used), else `rss`, what the guest occupies on the host.
   */
  memoryUsedMiB?: number;
  diskReadBytesPerSec?: number;
  diskWriteBytesPerSec?: number;
  netRxBytesPerSec?: number;
  netTxBytesPerSec?: number;
}

/** What the API reads of a live view: LiveView, or SharedLiveView (ingest/live-share.ts) across processes. */
export interface LiveReader {
  hostSummary(host: string): HostLiveSummary | undefined;
  guestSummary(uuid: string): GuestLiveSummary | undefined;
  /** Hosts and guests (by collectd host name) with new values since the last call, each once. */
  takeChanged?(): string[];
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

/**
 * One host's series, packed for memory: with thousands of hosts the live view is most of what herd keeps.
 * Each series is a slot in one Float64Array per host (off the JavaScript heap) holding
 * `[time, previous time, values..., previous values...]`; what describes a series (names, types) is a
 * `SeriesInfo` shared by every host that has that series. A sample is written in place, allocating
 * nothing; readers get `LiveSeries` objects built on demand (reads are rare next to writes), with rates
 * worked out from the last two samples then.
 */
interface HostEntry {
  lastSeen: number;
  interval: number;
  /** Series key → series number (index into `info` and `slots`). */
  index: Map<SeriesKey, number>;
  info: SeriesInfo[];
  /** Where each series' slot starts in `data`. */
  slots: number[];
  data: Float64Array;
  used: number;
  summary: HostLiveSummary | undefined;
  /** Listed in `changed` since the last takeChanged(). */
  changed: boolean;
}

interface SeriesInfo {
  readonly plugin: string;
  readonly pluginInstance: string;
  readonly type: string;
  readonly typeInstance: string;
  readonly names: readonly string[];
  readonly dsTypes: readonly DsType[];
  /** Whether any value is a counter or derive (else no previous sample needs keeping). */
  readonly rated: boolean;
}

const TIME = 0;
const PREVIOUS_TIME = 1;
const VALUES = 2;

/**
 * The latest value of every series per host and guest, kept in memory from what arrives, with rates for
 * counters and derives. Summaries are computed lazily and cached until the host's next value list.
 */
export class LiveView {
  private readonly hosts = new Map<string, HostEntry>();
  private changed: string[] = [];
  private readonly keys = new NameIds();
  private readonly infos = new SeriesInfos();

  /** `now` is the clock of arrival times (ms); the pipeline stamps packets with it. */
  constructor(readonly now: () => number = Date.now) {}

  /**
   * Records one value list (read now: the decoder reuses its objects); `names` come from types.db.
   * `arrival` is when it arrived (ms), defaulting to the clock.
   */
  update(vl: ValueList, names: readonly string[], arrival: number = this.now()): void {
    let host = this.hosts.get(vl.host);
    if (!host) {
      host = {
        lastSeen: 0,
        interval: vl.interval,
        index: new Map(),
        info: [],
        slots: [],
        data: new Float64Array(64),
        used: 0,
        summary: undefined,
        changed: false,
      };
      this.hosts.set(vl.host, host);
    }
    if (!host.changed) {
      host.changed = true;
      this.changed.push(vl.host);
    }
    host.lastSeen = arrival;
    if (vl.interval > 0) host.interval = vl.interval;
    host.summary = undefined;

    const key = this.keys.key(vl.plugin, vl.pluginInstance, vl.type, vl.typeInstance, true);
    const count = vl.values.length;
    let n = host.index.get(key);
    let info = n === undefined ? undefined : host.info[n];
    if (info === undefined || !sameNames(info.names, names) || !sameTypes(info.dsTypes, vl.dsTypes)) {
      // A new series, or one whose shape changed: no earlier sample to take a rate from.
      const before = info;
      info = this.infos.get(key, vl, names);
      if (n === undefined) {
        n = host.info.length;
        host.index.set(key, n);
        host.info.push(info);
        host.slots.push(allocate(host, count));
      } else {
        host.info[n] = info;
        // A slot of another width cannot be reused. The value count is types.db's for the type (the
        // pipeline drops lists that disagree), so this happens only when types.db changes.
        if (before === undefined || before.dsTypes.length !== count) host.slots[n] = allocate(host, count);
      }
      const at = host.slots[n];
      const data = host.data;
      data[at + TIME] = vl.time;
      data[at + PREVIOUS_TIME] = Number.NaN;
      for (let i = 0; i < count; i++) data[at + VALUES + i] = Number(vl.values[i]);
      return;
    }
    const at = host.slots[n!];
    const data = host.data;
    if (info.rated) {
      data[at + PREVIOUS_TIME] = data[at + TIME];
      data.copyWithin(at + VALUES + count, at + VALUES, at + VALUES + count);
    }
    data[at + TIME] = vl.time;
    for (let i = 0; i < count; i++) data[at + VALUES + i] = Number(vl.values[i]);
  }

  hostNames(): string[] {
    return [...this.hosts.keys()];
  }

  lastSeen(host: string): number | undefined {
    return this.hosts.get(host)?.lastSeen;
  }

  series(host: string): LiveSeries[] {
    const entry = this.hosts.get(host);
    if (!entry) return [];
    const out: LiveSeries[] = [];
    for (let n = 0; n < entry.info.length; n++) out.push(view(entry, n));
    return out;
  }

  /** One series' latest sample, or undefined. */
  get(
    host: string,
    plugin: string,
    pluginInstance: string,
    type: string,
    typeInstance = '',
  ): LiveSeries | undefined {
    const entry = this.hosts.get(host);
    const n = entry?.index.get(this.keys.key(plugin, pluginInstance, type, typeInstance, false));
    return entry && n !== undefined ? view(entry, n) : undefined;
  }

  hostSummary(host: string): HostLiveSummary | undefined {
    const entry = this.hosts.get(host);
    if (!entry) return undefined;
    entry.summary ??= summarizeHost(entry, this.series(host));
    return entry.summary;
  }

  /** Hosts and guests with new values since the last call (at most one entry each: bounded by their number). */
  takeChanged(): string[] {
    const out = this.changed;
    this.changed = [];
    return out.filter((name) => {
      const entry = this.hosts.get(name);
      if (!entry) return false;
      entry.changed = false;
      return true;
    });
  }

  guestSummary(uuid: string): GuestLiveSummary | undefined {
    const entry = this.hosts.get(uuid);
    if (!entry) return undefined;
    const out: GuestLiveSummary = { lastSeen: entry.lastSeen, interval: entry.interval };
    const memory: Record<string, number> = {};
    // A rate sums the guest's disks or interfaces; one without a rate yet (its first sample, or a counter reset)
    // makes the sum unknown, not smaller: no figure rather than a zero or a dip.
    type RateKey = 'diskReadBytesPerSec' | 'diskWriteBytesPerSec' | 'netRxBytesPerSec' | 'netTxBytesPerSec';
    const unknown = new Set<RateKey>();
    const add = (key: RateKey, rate: number | null | undefined) => {
      if (rate === null || rate === undefined) unknown.add(key);
      else out[key] = (out[key] ?? 0) + rate;
    };
    for (const s of this.series(uuid)) {
      if (s.plugin !== 'virt') continue;
      if (s.type === 'virt_cpu_total' && s.rates[0] != null) out.cpuPercent = (s.rates[0] / 1e9) * 100;
      else if (s.type === 'memory') memory[s.typeInstance] = s.values[0] / MiB;
      else if (s.type === 'disk_octets') {
        add('diskReadBytesPerSec', s.rates[0]);
        add('diskWriteBytesPerSec', s.rates[1]);
      } else if (s.type === 'if_octets') {
        add('netRxBytesPerSec', s.rates[0]);
        add('netTxBytesPerSec', s.rates[1]);
      }
    }
    for (const key of unknown) delete out[key];
    if (memory.total !== undefined) out.memoryMiB = memory.total;
    if (memory.available !== undefined && memory.unused !== undefined)
      out.memoryUsedMiB = memory.available - memory.unused;
    else if (memory.rss !== undefined) out.memoryUsedMiB = memory.rss;
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

/**
 * Reserves a slot for a series of `count` values at the end of the host's data, growing it as needed. Room
 * for previous values is kept even for gauges, so that a series whose types change (a gauge becoming a
 * derive) keeps its slot: a sender flipping types cannot make the data grow.
 */
function allocate(host: HostEntry, count: number): number {
  const at = host.used;
  const need = at + VALUES + 2 * count;
  if (need > host.data.length) {
    const grown = new Float64Array(Math.max(need, Math.ceil(host.data.length * 1.5)));
    grown.set(host.data.subarray(0, at));
    host.data = grown;
  }
  host.used = need;
  return at;
}

function view(entry: HostEntry, n: number): LiveSeries {
  const info = entry.info[n];
  const at = entry.slots[n];
  const data = entry.data;
  const count = info.dsTypes.length;
  const time = data[at + TIME];
  const elapsed = time - data[at + PREVIOUS_TIME];
  const values: number[] = new Array(count);
  const rates: Array<number | null> = new Array(count);
  for (let i = 0; i < count; i++) {
    values[i] = data[at + VALUES + i];
    rates[i] = null;
    // No earlier sample, or samples out of order (a NaN elapsed compares false too): no rate.
    if (info.rated && hasRate(info.dsTypes[i]) && elapsed > 0) {
      const delta = values[i] - data[at + VALUES + count + i];
      // A counter that went backwards was reset (or wrapped): no rate for this sample.
      if (delta >= 0) rates[i] = delta / elapsed;
    }
  }
  return {
    plugin: info.plugin,
    pluginInstance: info.pluginInstance,
    type: info.type,
    typeInstance: info.typeInstance,
    names: info.names,
    dsTypes: info.dsTypes,
    values,
    rates,
    time,
  };
}

const MiB = 1024 * 1024;

/**
 * Series keys. The names that make up a series (plugin, plugin instance, type, type instance) come
 * from a small vocabulary shared by all hosts, so each gets a 13-bit id and a series is keyed by the
 * number the four ids make (exact in a double): no string is built, hashed and kept per series, which
 * saves time per value list and memory per series. Ids are never taken back; once the vocabulary is
 * full, series with a name outside it are keyed by their joined names instead (NUL cannot occur in a
 * collectd name, so joined keys are unambiguous).
 */
type SeriesKey = number | string;
const ID_LIMIT = 2 ** 13;

class NameIds {
  private readonly ids = new Map<string, number>();

  key(
    plugin: string,
    pluginInstance: string,
    type: string,
    typeInstance: string,
    assign: boolean,
  ): SeriesKey {
    const a = this.id(plugin, assign);
    const b = this.id(pluginInstance, assign);
    const c = this.id(type, assign);
    const d = this.id(typeInstance, assign);
    if (a < 0 || b < 0 || c < 0 || d < 0) return `${plugin}\0${pluginInstance}\0${type}\0${typeInstance}`;
    return ((a * ID_LIMIT + b) * ID_LIMIT + c) * ID_LIMIT + d;
  }

  private id(name: string, assign: boolean): number {
    const id = this.ids.get(name);
    if (id !== undefined) return id;
    if (!assign || this.ids.size >= ID_LIMIT) return -1;
    this.ids.set(name, this.ids.size);
    return this.ids.size - 1;
  }
}

const hasRate = (ds: DsType) => ds === 'counter' || ds === 'derive';

/**
 * What describes a series, kept once for all hosts that have it (the same make of host has the same
 * series). Bounded, as series come from the network: past the bound, sharing starts over (what hosts
 * hold stays valid).
 */
class SeriesInfos {
  private readonly byKey = new Map<SeriesKey, SeriesInfo>();

  get(key: SeriesKey, vl: ValueList, names: readonly string[]): SeriesInfo {
    const known = this.byKey.get(key);
    if (known !== undefined && sameNames(known.names, names) && sameTypes(known.dsTypes, vl.dsTypes))
      return known;
    if (this.byKey.size >= 200_000) this.byKey.clear();
    const info: SeriesInfo = {
      plugin: vl.plugin,
      pluginInstance: vl.pluginInstance,
      type: vl.type,
      typeInstance: vl.typeInstance,
      names,
      dsTypes: Object.freeze([...vl.dsTypes]),
      rated: vl.dsTypes.some(hasRate),
    };
    this.byKey.set(key, info);
    return info;
  }
}

/** types.db gives one array per type, so this is mostly an identity check; callers may pass copies. */
function sameNames(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameTypes(a: readonly DsType[], b: readonly DsType[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const IDLE_STATES = new Set(['idle']);

function summarizeHost(entry: HostEntry, series: LiveSeries[]): HostLiveSummary {
  const out: HostLiveSummary = { lastSeen: entry.lastSeen, interval: entry.interval };
  let cpuTotal = 0;
  let cpuIdle = 0;
  let cpuPercentSum = 0;
  let cpuPercentIdle = 0;
  const cpus = new Set<string>();
  for (const s of series) {
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
