import type { Registry } from '../../lib/metrics.js';
import type { Point } from '../types.js';
import type { StoreStats } from './store-stats.js';

export type { StoreStats };

/**
 * Tag conditions: a string matches that value, an array any of its values. An empty string matches a
 * series that does not have the tag (InfluxDB's own rule, kept on PostgreSQL).
 */
export type TagFilter = Record<string, string | readonly string[]>;

export type Aggregate = 'mean' | 'max' | 'min' | 'sum' | 'last';
export type Combine = 'mean' | 'max' | 'min' | 'sum';

export interface LatestQuery {
  measurement: string;
  /** Defaults to `value`, the field InfluxDB's collectd service writes. */
  field?: string;
  tags?: TagFilter;
  /** Seconds since the epoch: ignore series whose last point is older (bounds the scan). */
  since?: number;
}

export interface LatestValue {
  measurement: string;
  /** The series' tags (empty tags are absent). */
  tags: Record<string, string>;
  field: string;
  time: number;
  value: number;
}

/**
 * A range query. Times are seconds since the epoch; buckets are `step` seconds wide, aligned to the
 * epoch, labelled by their start, and buckets without data are left out. `from` is rounded down to the
 * start of its bucket, so every bucket returned is whole; `to` is exclusive.
 *
 * Per series (measurement + full tag set), `agg` reduces each bucket's points to one value. With
 * `rate`, the points are first turned into per-second rates between consecutive points of the series
 * (a point up to `max(step, 300 s)` before `from` serves as the first predecessor); negative deltas —
 * counter resets — are dropped, so `agg` reduces rates.
 *
 * Without `groupBy` each series comes back on its own with all its tags. With `groupBy` (possibly
 * `[]` for one total) series sharing those tag values are combined per bucket with `combine`, which
 * defaults to `agg` (`sum` when `agg` is `last`), e.g. the total network rate of a host is
 * `{agg: 'mean', rate: true, groupBy: ['host'], combine: 'sum'}`.
 */
export interface RangeQuery {
  measurement: string;
  field?: string;
  tags?: TagFilter;
  from: number;
  to: number;
  step: number;
  agg: Aggregate;
  rate?: boolean;
  groupBy?: readonly string[];
  combine?: Combine;
}

export interface Series {
  /** All tags of the series, or the `groupBy` tags (absent when the series lacks them). */
  tags: Record<string, string>;
  /** [bucket start in seconds, value], oldest first. */
  points: Array<[number, number]>;
}

export interface SeriesQuery {
  measurement?: string;
  tags?: TagFilter;
}

export interface SeriesInfo {
  measurement: string;
  tags: Record<string, string>;
}

/**
 * Where points go and where graphs come from: InfluxDB when INFLUX_URL is set, PostgreSQL otherwise.
 * Both implementations answer the same queries with the same results for the same points, and results
 * are sorted the same way (series by measurement then tags, points by time).
 */
export interface MetricsStore {
  readonly kind: 'influx' | 'postgres';
  /**
   * Enqueues points and returns at once; batching, retries and buffering happen behind it. Invalid
   * points (empty or unrepresentable names, no finite field, tag or field named `time`) are dropped and
   * counted. Names are normalized the same way on both stores (see point-rules.ts).
   */
  write(points: readonly Point[]): void;
  /** Resolves once every point written before the call has been stored or dropped. */
  flush(): Promise<void>;
  /** Safe to call again while running. */
  start(): Promise<void>;
  /**
   * Delivers what it can within a short deadline, then keeps the rest in the disk spool, where it survives a
   * restart (a PostgreSQL store without `spoolDir` counts it dropped). Safe to call again.
   */
  stop(): Promise<void>;
  stats(): StoreStats;
  /** Whether the store answers right now (for /api/health). */
  ping(): Promise<boolean>;
  latest(query: LatestQuery): Promise<LatestValue[]>;
  range(query: RangeQuery): Promise<Series[]>;
  listSeries(query?: SeriesQuery): Promise<SeriesInfo[]>;
}

export interface StoreOptions {
  /** herd's Prometheus registry: the store registers its write-path metrics there. */
  registry?: Registry;
  /**
   * Whether the store keeps a disk spool under the data directory (default true). One process per spool: herd
   * keeps one only in the process that writes points (the ingest role), so processes that only read may share a
   * data directory; without one, what cannot be delivered by stop() is dropped and counted (`stopped`).
   */
  spool?: boolean;
}
