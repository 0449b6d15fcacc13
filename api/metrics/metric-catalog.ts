import type { Aggregate, Combine, RangeQuery, Series } from '../../ingest/store/metrics-store.js';
import { GUEST_MEASUREMENT, HOST_MEASUREMENT, LOOPBACK, NOT_A_DISK } from './graph-recorder.js';

/**
 * The graphs herd draws, and how each is computed. First from the figures herd records per host and guest
 * every interval (graph-recorder.ts: one gauge series per host and figure, cheap to read for many hosts and
 * long ranges); where there are none for the range (points written by something else than herd's ingest),
 * from collectd's own measurements as InfluxDB's collectd service names them (`split`: measurement
 * `<plugin>_<value>`, field `value`; `join`: measurement `<plugin>`, one field per value).
 *
 * Every line has an average and a peak per bucket. The average is exact. The peak is the largest value at
 * the store's own resolution (10 s points, or 5-minute rollups); where a line adds several series up (the
 * hosts of a pool; interfaces and disks of collectd's measurements) it is the sum of their peaks, an upper
 * bound; from collectd's CPU counters, CPU busy's peak comes from the lowest idle rate of each CPU.
 */
export type Unit = '%' | 'bytes/s' | 'MiB' | '';
export type SubjectKind = 'host' | 'vm';

export interface GraphLine {
  name: string;
  /** [bucket start (s), average, peak], oldest first. */
  points: Array<[number, number | null, number | null]>;
}

/** What a metric needs to know about the hosts or guests it is drawn for. */
export interface Subjects {
  kind: SubjectKind;
  /** collectd host names: hosts' hostnames, guests' UUIDs (the virt plugin's HostnameFormat uuid). */
  names: string[];
  /** vCPUs allocated to the guests, for CPU use as a share of them. */
  vcpus: number;
  /** CPUs of the hosts (inventory), for CPU use as a share of them. */
  cpus: number;
}

/** One range query with the graph's from/to/step filled in (rollups or raw, see graphRange). */
export type RangeFn = (query: Omit<RangeQuery, 'from' | 'to' | 'step'>) => Promise<Series[]>;

export interface MetricDef {
  name: string;
  unit: Unit;
  title: string;
  compute(range: RangeFn, subjects: Subjects, mode: 'split' | 'join'): Promise<GraphLine[]>;
}

const MiB = 1024 * 1024;

/** measurement and field of one collectd value under the multi-value mode */
function at(mode: 'split' | 'join', plugin: string, value: string): { measurement: string; field: string } {
  return mode === 'split'
    ? { measurement: `${plugin}_${value}`, field: 'value' }
    : { measurement: plugin, field: value };
}

type Points = Map<number, number>;

function toMap(series: Series | undefined): Points {
  return new Map(series?.points ?? []);
}

/** Per bucket, f over the values of several series (missing values left out; no values, no bucket). */
function combine(all: Points[], f: (values: number[]) => number): Points {
  const out: Points = new Map();
  const times = new Set<number>();
  for (const m of all) for (const t of m.keys()) times.add(t);
  for (const t of [...times].sort((a, b) => a - b)) {
    const values = all.map((m) => m.get(t)).filter((v): v is number => v !== undefined);
    if (values.length) out.set(t, f(values));
  }
  return out;
}

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

function line(name: string, avg: Points, peak: Points, scale = 1): GraphLine {
  const times = [...new Set([...avg.keys(), ...peak.keys()])].sort((a, b) => a - b);
  const scaled = (v: number | undefined) => (v === undefined ? null : v * scale);
  return { name, points: times.map((t) => [t, scaled(avg.get(t)), scaled(peak.get(t))]) };
}

/** Average and peak queries of one value, with the same filter. */
async function both(
  range: RangeFn,
  query: Omit<RangeQuery, 'from' | 'to' | 'step' | 'agg'>,
  peakAgg: Aggregate = 'max',
  peakCombine?: Combine,
): Promise<[Series[], Series[]]> {
  return Promise.all([
    range({ ...query, agg: 'mean' }),
    range({ ...query, agg: peakAgg, combine: peakCombine ?? query.combine }),
  ]);
}

/** A value per subject summed per tag value, some tag values left out, then summed (network, disks). */
async function summedRates(
  range: RangeFn,
  subjects: Subjects,
  where: { plugin: string; type: string; values: [string, string] },
  mode: 'split' | 'join',
  skip: (instance: string) => boolean,
  byInstance: boolean,
): Promise<GraphLine[]> {
  return Promise.all(
    where.values.map(async (value) => {
      const [avg, peak] = await both(range, {
        ...at(mode, where.plugin, value),
        tags: { host: subjects.names, type: where.type },
        rate: true,
        groupBy: byInstance ? ['instance'] : [],
        combine: 'sum',
      });
      const keep = (s: Series) => !skip(s.tags.instance ?? '');
      return line(
        value,
        combine(avg.filter(keep).map(toMap), sum),
        combine(peak.filter(keep).map(toMap), sum),
      );
    }),
  );
}

interface SummaryLine {
  name: string;
  field: string;
  /** How the subjects' values add up per bucket: `sum` (bytes, MiB, busy CPUs) or `mean` (load). */
  combine: Combine;
  scale?: number;
}

/**
 * The lines with recorded figures in the range (none: nothing was recorded). One subject's series is read as
 * it is (no combining: cheaper on InfluxDB).
 */
async function recorded(
  range: RangeFn,
  measurement: string,
  subjects: Subjects,
  lines: SummaryLine[],
): Promise<GraphLine[]> {
  const out = await Promise.all(
    lines.map(async (l) => {
      const one = subjects.names.length === 1;
      const query = {
        measurement,
        field: l.field,
        tags: { host: subjects.names },
        ...(one ? {} : { groupBy: [], combine: l.combine }),
      };
      const [avg, peak] = await both(
        range,
        query,
        'max',
        one ? undefined : l.combine === 'mean' ? 'max' : 'sum',
      );
      return line(l.name, toMap(avg[0]), toMap(peak[0]), l.scale);
    }),
  );
  return out.filter((l) => l.points.length > 0);
}

/** The recorded figures, or collectd's measurements when there are none. */
function recordedOr(
  measurement: string,
  lines: (subjects: Subjects) => SummaryLine[] | undefined,
  raw: MetricDef['compute'],
): MetricDef['compute'] {
  return async (range, subjects, mode) => {
    const wanted = lines(subjects);
    const fromRecorded = wanted ? await recorded(range, measurement, subjects, wanted) : [];
    return fromRecorded.length ? fromRecorded : raw(range, subjects, mode);
  };
}

const hostMetrics: MetricDef[] = [
  {
    name: 'cpu',
    unit: '%',
    title: 'CPU busy',
    compute: recordedOr(
      HOST_MEASUREMENT,
      (subjects) =>
        subjects.cpus > 0
          ? [{ name: 'busy', field: 'cpu_busy_cores', combine: 'sum', scale: 100 / subjects.cpus }]
          : undefined,
      async (range, subjects, mode) => {
        const cpu = { ...at(mode, 'cpu', 'value'), rate: true as const };
        const [states, idleMin] = await Promise.all([
          range({
            ...cpu,
            tags: { host: subjects.names, type: 'cpu' },
            agg: 'mean',
            groupBy: ['type_instance'],
            combine: 'sum',
          }),
          range({
            ...cpu,
            tags: { host: subjects.names, type: 'cpu', type_instance: 'idle' },
            agg: 'min',
            groupBy: [],
            combine: 'sum',
          }),
        ]);
        const total = combine(states.map(toMap), sum);
        const idle = toMap(states.find((s) => s.tags.type_instance === 'idle'));
        const busy = (idleRate: Points): Points => {
          const out: Points = new Map();
          for (const [t, all] of total) {
            if (all > 0) out.set(t, Math.min(100, Math.max(0, 100 * (1 - (idleRate.get(t) ?? 0) / all))));
          }
          return out;
        };
        return [line('busy', busy(idle), busy(toMap(idleMin[0])))];
      },
    ),
  },
  {
    name: 'memory',
    unit: 'MiB',
    title: 'Memory',
    compute: recordedOr(
      HOST_MEASUREMENT,
      () =>
        (['used', 'buffered', 'cached', 'free'] as const).map((name) => ({
          name,
          field: `mem_${name}`,
          combine: 'sum',
        })),
      async (range, subjects, mode) => {
        const [avg, peak] = await both(range, {
          ...at(mode, 'memory', 'value'),
          tags: { host: subjects.names, type: 'memory' },
          groupBy: ['type_instance'],
          combine: 'sum',
        });
        return byTypeInstance(avg, peak, ['used', 'buffered', 'cached', 'free'], 1 / MiB);
      },
    ),
  },
  {
    name: 'load',
    unit: '',
    title: 'Load',
    compute: recordedOr(
      HOST_MEASUREMENT,
      () => [
        { name: 'shortterm', field: 'load1', combine: 'mean' },
        { name: 'midterm', field: 'load5', combine: 'mean' },
        { name: 'longterm', field: 'load15', combine: 'mean' },
      ],
      (range, subjects, mode) =>
        Promise.all(
          (['shortterm', 'midterm', 'longterm'] as const).map(async (value) => {
            const [avg, peak] = await both(
              range,
              { ...at(mode, 'load', value), tags: { host: subjects.names }, groupBy: [], combine: 'mean' },
              'max',
              'max',
            );
            return line(value, toMap(avg[0]), toMap(peak[0]));
          }),
        ),
    ),
  },
  {
    name: 'network',
    unit: 'bytes/s',
    title: 'Network',
    compute: recordedOr(
      HOST_MEASUREMENT,
      () => [
        { name: 'rx', field: 'net_rx', combine: 'sum' },
        { name: 'tx', field: 'net_tx', combine: 'sum' },
      ],
      (range, subjects, mode) =>
        summedRates(
          range,
          subjects,
          { plugin: 'interface', type: 'if_octets', values: ['rx', 'tx'] },
          mode,
          (i) => LOOPBACK.test(i),
          true,
        ),
    ),
  },
  {
    name: 'disk',
    unit: 'bytes/s',
    title: 'Disk',
    compute: recordedOr(
      HOST_MEASUREMENT,
      () => [
        { name: 'read', field: 'disk_read', combine: 'sum' },
        { name: 'write', field: 'disk_write', combine: 'sum' },
      ],
      (range, subjects, mode) =>
        summedRates(
          range,
          subjects,
          { plugin: 'disk', type: 'disk_octets', values: ['read', 'write'] },
          mode,
          (i) => NOT_A_DISK.test(i),
          true,
        ),
    ),
  },
];

const vmMetrics: MetricDef[] = [
  {
    name: 'cpu',
    unit: '%',
    title: 'CPU (share of its vCPUs)',
    compute: recordedOr(
      GUEST_MEASUREMENT,
      (subjects) => [
        { name: 'busy', field: 'cpu_percent', combine: 'sum', scale: 1 / Math.max(1, subjects.vcpus) },
      ],
      async (range, subjects, mode) => {
        const [avg, peak] = await both(range, {
          ...at(mode, 'virt', 'value'),
          tags: { host: subjects.names, type: 'virt_cpu_total' },
          rate: true,
          groupBy: [],
          combine: 'sum',
        });
        // CPU time in ns per second, over the vCPUs the guests were given.
        return [line('busy', toMap(avg[0]), toMap(peak[0]), 100 / 1e9 / Math.max(1, subjects.vcpus))];
      },
    ),
  },
  {
    name: 'memory',
    unit: 'MiB',
    title: 'Memory',
    compute: recordedOr(
      GUEST_MEASUREMENT,
      () => [{ name: 'total', field: 'mem', combine: 'sum' }],
      async (range, subjects, mode) => {
        const [avg, peak] = await both(range, {
          ...at(mode, 'virt', 'value'),
          tags: { host: subjects.names, type: 'memory' },
          groupBy: ['type_instance'],
          combine: 'sum',
        });
        return byTypeInstance(avg, peak, ['total', 'rss', 'actual_balloon', 'available', 'unused'], 1 / MiB);
      },
    ),
  },
  {
    name: 'network',
    unit: 'bytes/s',
    title: 'Network',
    compute: recordedOr(
      GUEST_MEASUREMENT,
      () => [
        { name: 'rx', field: 'net_rx', combine: 'sum' },
        { name: 'tx', field: 'net_tx', combine: 'sum' },
      ],
      (range, subjects, mode) =>
        summedRates(
          range,
          subjects,
          { plugin: 'virt', type: 'if_octets', values: ['rx', 'tx'] },
          mode,
          () => false,
          false,
        ),
    ),
  },
  {
    name: 'disk',
    unit: 'bytes/s',
    title: 'Disk',
    compute: recordedOr(
      GUEST_MEASUREMENT,
      () => [
        { name: 'read', field: 'disk_read', combine: 'sum' },
        { name: 'write', field: 'disk_write', combine: 'sum' },
      ],
      (range, subjects, mode) =>
        summedRates(
          range,
          subjects,
          { plugin: 'virt', type: 'disk_octets', values: ['read', 'write'] },
          mode,
          () => false,
          false,
        ),
    ),
  },
];

/** Lines per type instance, known ones first in the given order, then any others by name. */
function byTypeInstance(avg: Series[], peak: Series[], order: string[], scale: number): GraphLine[] {
  const names = [...new Set(avg.map((s) => s.tags.type_instance ?? ''))].sort((a, b) => {
    const [i, j] = [order.indexOf(a), order.indexOf(b)];
    return (i < 0 ? order.length : i) - (j < 0 ? order.length : j) || (a < b ? -1 : a > b ? 1 : 0);
  });
  return names.map((name) =>
    line(
      name,
      toMap(avg.find((s) => (s.tags.type_instance ?? '') === name)),
      toMap(peak.find((s) => (s.tags.type_instance ?? '') === name)),
      scale,
    ),
  );
}

export const METRICS: Record<SubjectKind, readonly MetricDef[]> = { host: hostMetrics, vm: vmMetrics };

export const METRIC_NAMES = [...new Set([...hostMetrics, ...vmMetrics].map((m) => m.name))];

export function findMetric(kind: SubjectKind, name: string): MetricDef | undefined {
  return METRICS[kind].find((m) => m.name === name);
}
