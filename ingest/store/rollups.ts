import type { Config } from '../../lib/config.js';
import type { MetricsStore, RangeQuery, Series, TagFilter } from './metrics-store.js';
import { type PlannedRange, planRange, QueryError, sortSeries } from './range-query.js';

export type RollupSettings = Config['rollups'];

/** When HERD_RAW_RETENTION_HOURS is 0 (raw data kept as it is), graphs still switch to rollups past this. */
export const DEFAULT_RAW_WINDOW_HOURS = 48;

/**
 * Downsampled metrics for long graphs: per series and `stepSeconds` bucket, the mean and the max of the raw
 * values, kept `retentionDays`. On InfluxDB they are a retention policy filled by a continuous query; on
 * PostgreSQL a table filled by a job. `range` answers RangeQuery (see metrics-store.ts) from them: gauges
 * reduce the bucket means (`max` reduces the bucket maxima), rates come from consecutive bucket means.
 */
export interface Rollups {
  readonly kind: 'influx' | 'postgres';
  readonly settings: RollupSettings;
  /** Sets the rollups up and keeps them filled; never fails (a database that is down is retried). */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Rolls up [from, to) now (seconds). Time passing does this by itself; for backfills and tests. */
  refresh(from: number, to: number): Promise<void>;
  /** Buckets before this time (seconds) are complete; later ones come from raw points. */
  doneUntil(): number;
  range(query: RangeQuery): Promise<Series[]>;
  /**
   * Per series, the `percentile`-th percentile of the rollup buckets' means over [from, to) (complete
   * buckets only: `to` is clipped to doneUntil), nearest rank as InfluxDB's `percentile()`: the value at rank
   * floor(n × p / 100 + 0.5) of the n bucket means in ascending order. Series without buckets are left out.
   */
  percentiles(query: PercentileQuery): Promise<PercentileValue[]>;
}

export interface PercentileQuery {
  measurement: string;
  field: string;
  tags?: TagFilter;
  /** Seconds since the epoch; `from` is rounded down to a bucket start. */
  from: number;
  to: number;
  /** In (0, 100]. */
  percentile: number;
}

export interface PercentileValue {
  /** All tags of the series. */
  tags: Record<string, string>;
  value: number;
  /** How many buckets the percentile was taken over. */
  buckets: number;
}

/**
 * The bucket range of a percentile query (whole buckets, none past doneUntil; null when empty) and the plan of
 * its series: daily means, over which both stores take the percentile.
 */
export function percentileWindow(
  rollups: Pick<Rollups, 'doneUntil' | 'settings'>,
  q: PercentileQuery,
): { fromUs: number; toUs: number; plan: PlannedRange } | null {
  if (!(q.percentile > 0 && q.percentile <= 100)) throw new QueryError('percentile must be in (0, 100]');
  if (!(Number.isFinite(q.from) && Number.isFinite(q.to)))
    throw new QueryError('from and to must be numbers');
  const step = rollups.settings.stepSeconds;
  const from = Math.floor(q.from / step) * step;
  const to = Math.min(q.to, Math.floor(rollups.doneUntil() / step) * step);
  if (to <= from) return null;
  return {
    fromUs: from * 1e6,
    toUs: to * 1e6,
    plan: planRange({ ...q, from, to, step: 86_400, agg: 'mean' }),
  };
}

/** Percentile values by tags, the order both stores answer series in. */
export function byTags(values: PercentileValue[]): PercentileValue[] {
  const key = (v: PercentileValue) => JSON.stringify(Object.entries(v.tags));
  return values
    .map((v) => ({ v, k: key(v) }))
    .sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0))
    .map(({ v }) => v);
}

/** The raw window: graphs longer than this, or reaching further back, read the rollups. */
export function rawWindowSeconds(settings: RollupSettings): number {
  return (settings.rawRetentionHours || DEFAULT_RAW_WINDOW_HOURS) * 3600;
}

/** Raw samples (one per series and 10 s) a graph may read before it reads the rollups instead. */
export const RAW_SAMPLE_BUDGET = 100_000;

/**
 * Whether a graph of `series` series over [from, to) reads the rollups: when raw points are gone (longer
 * than the raw window, or further back), or when there would be more raw samples than RAW_SAMPLE_BUDGET
 * (a pool of 100 hosts over a day): the rollups answer such graphs in a fraction of the time.
 */
export function wantsRollups(
  settings: RollupSettings,
  range: { from: number; to: number; series: number },
  now: number,
): boolean {
  const window = rawWindowSeconds(settings);
  const { from, to, series } = range;
  return to - from > window || from < now - window || (series * (to - from)) / 10 > RAW_SAMPLE_BUDGET;
}

export interface GraphRange {
  series: Series[];
  source: 'raw' | 'rollup';
}

/**
 * A range query for a graph: from the rollups when given (decide with wantsRollups), else from raw points.
 * The buckets the rollups do not hold yet (the last few minutes) are read from raw points, so long graphs
 * still move. `query.step` must then be a multiple of the rollup step.
 */
export async function graphRange(
  store: MetricsStore,
  rollups: Rollups | undefined,
  query: RangeQuery,
): Promise<GraphRange> {
  if (!rollups) return { series: await store.range(query), source: 'raw' };
  const split = Math.floor(rollups.doneUntil() / query.step) * query.step;
  if (split >= query.to) return { series: await rollups.range(query), source: 'rollup' };
  if (split <= query.from) return { series: await store.range(query), source: 'raw' };
  const [old, recent] = await Promise.all([
    rollups.range({ ...query, to: split }),
    store.range({ ...query, from: split }),
  ]);
  return { series: joinSeries(old, recent), source: 'rollup' };
}

/** Appends `later`'s points to the series of `earlier` with the same tags (both sorted the stores' way). */
function joinSeries(earlier: Series[], later: Series[]): Series[] {
  const byTags = new Map(
    earlier.map((s) => [JSON.stringify(s.tags), { tags: s.tags, points: [...s.points] }]),
  );
  for (const s of later) {
    const key = JSON.stringify(s.tags);
    const found = byTags.get(key);
    if (found) found.points.push(...s.points);
    else byTags.set(key, { tags: s.tags, points: [...s.points] });
  }
  return sortSeries([...byTags.values()]);
}
