import { type RawBuilder, sql } from 'kysely';
import type { Logger } from '../../lib/log.js';
import type { Database } from '../../schema/db.js';
import type { RangeQuery, Series } from './metrics-store.js';
import { AGGREGATE_SQL, COMBINE_SQL, tagWhere } from './postgres-sql.js';
import { type PlannedRange, planRange, sortSeries, tidyTags } from './range-query.js';
import {
  byTags,
  type PercentileQuery,
  type PercentileValue,
  percentileWindow,
  type RollupSettings,
  type Rollups,
} from './rollups.js';

export const POSTGRES_ROLLUP_DEFAULTS = {
  /** Raw points may arrive this late and still make it into their bucket's first rollup. */
  graceSeconds: 30,
  /** Seconds of raw points per INSERT … SELECT, so one statement never reads a huge range. */
  chunkSeconds: 3600,
  pruneEveryMs: 60 * 60 * 1000,
  pruneChunk: 20_000,
};

/** Only one herd process runs the job at a time (several may serve one database). */
const LOCK_KEY = sql`hashtext('herd.metric_rollups')`;

function ts(seconds: number): RawBuilder<Date> {
  return sql`to_timestamp(${seconds}::float8)`;
}
const SECONDS = (column: string) => sql.raw(`extract(epoch FROM ${column})::float8`);

/**
 * Rollups on PostgreSQL: `metric_rollups` (series of metric_points × bucket: mean, max), filled by a job
 * every bucket for the buckets closed since `metric_rollup_progress`, re-doing the last one for late points.
 * The first run rolls up the raw points already stored.
 */
export class PostgresRollups implements Rollups {
  readonly kind = 'postgres' as const;
  private readonly o: typeof POSTGRES_ROLLUP_DEFAULTS;
  private readonly now: () => number;
  private done = 0;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private lastPrune = 0;
  private stopped = true;

  constructor(
    private readonly db: Database,
    readonly settings: RollupSettings,
    private readonly log: Logger,
    options: Partial<typeof POSTGRES_ROLLUP_DEFAULTS> & { now?: () => number } = {},
  ) {
    this.o = { ...POSTGRES_ROLLUP_DEFAULTS, ...options };
    this.now = options.now ?? Date.now;
  }

  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    this.timer = setInterval(() => void this.tick(), Math.min(this.settings.stepSeconds, 60) * 1000);
    this.timer.unref();
    void this.tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  doneUntil(): number {
    return this.done;
  }

  /** One pass of the job (the timer calls it); resolves when done. */
  tick(): Promise<void> {
    this.running ??= this.catchUp()
      .catch((err) =>
        this.log.warn({ err: (err as Error).message }, 'metric rollup job failed; will try again'),
      )
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  async refresh(from: number, to: number): Promise<void> {
    const step = this.settings.stepSeconds;
    const end = Math.ceil(to / step) * step;
    for (let t = Math.floor(from / step) * step; t < end; t += this.o.chunkSeconds) {
      await this.rollUp(this.db, t, Math.min(t + this.o.chunkSeconds, end));
    }
    await this.advance(this.db, end);
  }

  async range(query: RangeQuery): Promise<Series[]> {
    const p = planRange(query);
    const { rows } = await this.rangeSql(p).execute(this.db);
    const bySeries = new Map<string, Series>();
    for (const r of rows) {
      const tags = tidyTags(r.tags);
      const key = JSON.stringify(tags);
      const series = bySeries.get(key) ?? { tags, points: [] };
      bySeries.set(key, series);
      if (r.v !== null) series.points.push([r.t, r.v]);
    }
    return sortSeries([...bySeries.values()].filter((s) => s.points.length > 0));
  }

  async percentiles(q: PercentileQuery): Promise<PercentileValue[]> {
    const window = percentileWindow(this, q);
    if (!window) return [];
    const p = window.plan;
    // Nearest rank over the sorted bucket means, as InfluxDB's percentile(): both stores give the same value.
    const { rows } = await sql<{ tags: Record<string, string>; value: number; buckets: number }>`
      WITH s AS (
        SELECT id, tags FROM metric_series WHERE measurement = ${p.measurement} AND field = ${p.field} AND ${tagWhere(p.tags)}
      ), r AS (
        SELECT series_id, array_agg(mean::float8 ORDER BY mean) AS v FROM metric_rollups
        WHERE series_id IN (SELECT id FROM s) AND mean IS NOT NULL
          AND bucket >= ${ts(window.fromUs / 1e6)} AND bucket < ${ts(window.toUs / 1e6)}
        GROUP BY series_id
      )
      SELECT s.tags, r.v[least(cardinality(r.v), greatest(1, floor(cardinality(r.v) * ${q.percentile}::float8 / 100 + 0.5)::int))] AS value,
        cardinality(r.v)::int AS buckets
      FROM r JOIN s ON s.id = r.series_id`.execute(this.db);
    return byTags(rows.map((r) => ({ tags: tidyTags(r.tags), value: r.value, buckets: r.buckets })));
  }

  private async catchUp(): Promise<void> {
    const step = this.settings.stepSeconds;
    const target = Math.floor((this.now() / 1000 - this.o.graceSeconds) / step) * step;
    for (;;) {
      if (this.stopped) return;
      const more = await this.db.transaction().execute(async (trx) => {
        const { rows } = await sql<{
          locked: boolean;
        }>`SELECT pg_try_advisory_xact_lock(${LOCK_KEY}) AS locked`.execute(trx);
        const progress = await this.progress(trx);
        if (progress !== undefined) this.done = progress;
        if (!rows[0]?.locked) return false;
        const start = progress === undefined ? await this.firstBucket(trx, target) : progress - step;
        if (start >= target) return false;
        const end = Math.min(start + Math.max(this.o.chunkSeconds, step), target);
        await this.rollUp(trx, start, end);
        await this.advance(trx, end);
        return end < target;
      });
      if (!more) break;
    }
    if (this.now() - this.lastPrune >= this.o.pruneEveryMs) {
      this.lastPrune = this.now();
      await this.prune();
    }
  }

  private async rollUp(db: Database, from: number, to: number): Promise<void> {
    const step = this.settings.stepSeconds;
    await sql`
      INSERT INTO metric_rollups (series_id, bucket, mean, max)
      SELECT series_id, date_bin(${step}::float8 * interval '1 second', time, timestamptz 'epoch'), avg(value), max(value)
      FROM metric_points WHERE time >= ${ts(from)} AND time < ${ts(to)}
      GROUP BY 1, 2
      ON CONFLICT (series_id, bucket) DO UPDATE SET mean = EXCLUDED.mean, max = EXCLUDED.max`.execute(db);
  }

  private async advance(db: Database, until: number): Promise<void> {
    const { rows } = await sql<{ done: number }>`
      INSERT INTO metric_rollup_progress (step_seconds, done_until) VALUES (${this.settings.stepSeconds}, ${ts(until)})
      ON CONFLICT (step_seconds) DO UPDATE SET done_until = greatest(metric_rollup_progress.done_until, EXCLUDED.done_until)
      RETURNING ${SECONDS('done_until')} AS done`.execute(db);
    this.done = rows[0].done;
  }

  private async progress(db: Database): Promise<number | undefined> {
    const { rows } = await sql<{ done: number }>`
      SELECT ${SECONDS('done_until')} AS done FROM metric_rollup_progress WHERE step_seconds = ${this.settings.stepSeconds}`.execute(
      db,
    );
    return rows[0]?.done;
  }

  /** Where a first run starts: the oldest raw point (one index probe per series), within the retention. */
  private async firstBucket(db: Database, fallback: number): Promise<number> {
    const { rows } = await sql<{ first: number | null }>`
      SELECT ${SECONDS('min(p.time)')} AS first FROM metric_series s
      CROSS JOIN LATERAL (SELECT time FROM metric_points WHERE series_id = s.id ORDER BY time LIMIT 1) p`.execute(
      db,
    );
    const step = this.settings.stepSeconds;
    const oldest = this.now() / 1000 - this.settings.retentionDays * 86_400;
    const first = rows[0]?.first;
    return first == null ? fallback : Math.floor(Math.max(first, oldest) / step) * step;
  }

  private async prune(): Promise<void> {
    const cutoff = this.now() / 1000 - this.settings.retentionDays * 86_400;
    let total = 0;
    for (;;) {
      const result = await sql`
        DELETE FROM metric_rollups WHERE ctid = ANY(ARRAY(
          SELECT ctid FROM metric_rollups WHERE bucket < ${ts(cutoff)} LIMIT ${this.o.pruneChunk}
        ))`.execute(this.db);
      const deleted = Number(result.numAffectedRows ?? 0);
      total += deleted;
      if (deleted < this.o.pruneChunk) break;
    }
    if (total > 0) this.log.info({ deleted: total }, 'old metric rollups pruned');
  }

  /** The semantics of the store's rangeSql (postgres-store.ts), over bucket means (and maxima for `max`). */
  private rangeSql(p: PlannedRange) {
    const from = ts(p.fromUs / 1e6);
    const to = ts(p.toUs / 1e6);
    const column = sql.raw(p.agg === 'max' && !p.rate ? 'max' : 'mean');
    const lookback = ts((p.fromUs - Math.max(p.stepUs, 2 * this.settings.stepSeconds * 1e6)) / 1e6);
    const points = p.rate
      ? sql`
        SELECT series_id, time, value FROM (
          SELECT series_id, bucket AS time,
            (mean - lag(mean) OVER w) / extract(epoch FROM bucket - lag(bucket) OVER w)::float8 AS value
          FROM metric_rollups
          WHERE series_id IN (SELECT id FROM s) AND bucket >= ${lookback} AND bucket < ${to}
          WINDOW w AS (PARTITION BY series_id ORDER BY bucket)
        ) d WHERE time >= ${from} AND value >= 0`
      : sql`SELECT series_id, bucket AS time, ${column} AS value FROM metric_rollups
        WHERE series_id IN (SELECT id FROM s) AND bucket >= ${from} AND bucket < ${to}`;
    const perSeries = sql`
      WITH s AS (
        SELECT id, tags FROM metric_series WHERE measurement = ${p.measurement} AND field = ${p.field} AND ${tagWhere(p.tags)}
      ), pts AS (${points}), b AS (
        SELECT series_id, date_bin(${p.stepUs}::float8 * interval '1 microsecond', time, timestamptz 'epoch') AS bucket,
          ${AGGREGATE_SQL[p.agg]} AS v
        FROM pts GROUP BY 1, 2
      )`;
    if (!p.groupBy) {
      return sql<{ tags: Record<string, string>; t: number; v: number | null }>`${perSeries}
        SELECT s.tags, ${SECONDS('b.bucket')} AS t, b.v FROM b JOIN s ON s.id = b.series_id`;
    }
    const groupTags = p.groupBy.length
      ? sql`jsonb_build_object(${sql.join(p.groupBy.map((k) => sql`${k}::text, s.tags -> ${k}::text`))})`
      : sql`'{}'::jsonb`;
    return sql<{ tags: Record<string, string | null>; t: number; v: number | null }>`${perSeries}
      SELECT ${groupTags} AS tags, ${SECONDS('b.bucket')} AS t, ${COMBINE_SQL[p.combine]} AS v
      FROM b JOIN s ON s.id = b.series_id GROUP BY 1, b.bucket`;
  }
}
