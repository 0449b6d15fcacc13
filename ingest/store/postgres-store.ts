import { promisify } from 'node:util';
import { gunzip as gunzipCb, gzip as gzipCb } from 'node:zlib';
import { type RawBuilder, sql } from 'kysely';
import type { Database } from '../../schema/db.js';
import type { Point } from '../types.js';
import type {
  LatestQuery,
  LatestValue,
  MetricsStore,
  RangeQuery,
  Series,
  SeriesInfo,
  SeriesQuery,
} from './metrics-store.js';
import { BAD_TIME, PointRules, Refusal } from './point-rules.js';
import { AGGREGATE_SQL, COMBINE_SQL, tagWhere } from './postgres-sql.js';
import {
  cleanMeasurement,
  cleanTags,
  type PlannedRange,
  planLatest,
  planRange,
  sortSeries,
  sortSeriesInfo,
  tidyTags,
} from './range-query.js';
import { RetentionGuard } from './retention-guard.js';
import type { Batch } from './spool.js';
import type { StoreStats } from './store-stats.js';
import { ENGINE_DEFAULTS, WriteEngine, type WriterOptions, type WriteTarget } from './write-engine.js';

export const POSTGRES_DEFAULTS = {
  ...ENGINE_DEFAULTS,
  pruneEveryMs: 60 * 60 * 1000,
  /** Rows per DELETE when pruning, so retention never holds long locks or a huge transaction. */
  pruneChunk: 20_000,
};

export interface PostgresStoreOptions
  extends Partial<typeof POSTGRES_DEFAULTS>,
    Omit<WriterOptions, 'spillMaxBytes'> {
  db: Database;
  /** The spool's bound (default 1 GiB). */
  spillMaxBytes?: number;
  retentionDays: number;
}

/** One row per field value, column-wise so a batch goes to PostgreSQL as a few arrays. */
interface Rows {
  /** Points, for batching and accounting; a point has one row per field. */
  points: number;
  count: number;
  measurements: string[];
  fields: string[];
  /** Canonical tags: sorted keys, no empty values (jsonb compares them equal whatever the order). */
  tags: string[];
  timesUs: number[];
  values: number[];
}

const SERIES_CACHE_LIMIT = 1_000_000;
const gzip = promisify(gzipCb);
const gunzip = promisify(gunzipCb);
const COLUMNS = ['measurements', 'fields', 'tags', 'timesUs', 'values'] as const;
// Errors without a SQLSTATE (the network) and SQLSTATEs for connection trouble, serialization or
// deadlock, resources, shutdown are worth retrying; anything else (a data error) would fail again.
const RETRYABLE_SQLSTATE = /^(08|40|53|57)/;

/** Points in microseconds since the epoch, exactly (no float seconds on the way). */
function ts(us: number | RawBuilder<unknown>): RawBuilder<Date> {
  return sql`(timestamptz 'epoch' + ${us}::float8 * interval '1 microsecond')`;
}
const US = (column: string) => sql.raw(`(extract(epoch FROM ${column}) * 1000000)::float8`);

/**
 * The PostgreSQL store (used when INFLUX_URL is unset): the same write engine as InfluxStore (write-engine.ts),
 * rows into `metric_points` keyed by a cached series id, and the same queries answered in SQL.
 */
export class PostgresStore implements MetricsStore, WriteTarget<Rows, Rows> {
  readonly kind = 'postgres' as const;
  private readonly o: PostgresStoreOptions & typeof POSTGRES_DEFAULTS;
  private readonly db: Database;
  private readonly rules = new PointRules();
  private readonly engine: WriteEngine<Rows, Rows>;
  private readonly retention: RetentionGuard;
  private readonly seriesIds = new Map<string, number>();
  private pending: Rows;
  private pruneTimer?: NodeJS.Timeout;

  constructor(options: PostgresStoreOptions) {
    this.o = { ...POSTGRES_DEFAULTS, ...options } as PostgresStoreOptions & typeof POSTGRES_DEFAULTS;
    this.db = options.db;
    this.pending = emptyRows();
    this.engine = new WriteEngine(
      {
        ...this.o,
        spillMaxBytes: this.o.spillMaxBytes ?? 1024 ** 3,
        store: 'postgres',
        system: 'PostgreSQL',
        what: 'metric points',
      },
      this,
    );
    this.retention = new RetentionGuard(this.engine.counters, this.o.log);
    this.retention.retentionSeconds = this.o.retentionDays * 86_400;
  }

  write(points: readonly Point[]): void {
    const cutoff = this.retention.cutoff();
    for (const point of points) {
      if (point?.time < cutoff) {
        this.retention.refuse(point);
        continue;
      }
      try {
        this.add(point);
      } catch (err) {
        this.engine.refuse(point, (err as Error).message);
      }
    }
    this.engine.scheduleSeal();
  }

  flush(): Promise<void> {
    return this.engine.flush();
  }

  async start(): Promise<void> {
    const first = !this.engine.started;
    await this.engine.start();
    if (!first || this.pruneTimer) return;
    const prune = () =>
      this.prune().catch((err) =>
        this.o.log.warn({ err }, 'pruning old metric points failed; will try again'),
      );
    // The first pruning waits a minute, off the busy start-up; then every pruneEveryMs.
    this.pruneTimer = setTimeout(
      () => {
        void prune();
        this.pruneTimer = setInterval(prune, this.o.pruneEveryMs);
        this.pruneTimer.unref();
      },
      Math.min(60_000, this.o.pruneEveryMs),
    );
    this.pruneTimer.unref();
  }

  stop(): Promise<void> {
    clearTimeout(this.pruneTimer);
    this.pruneTimer = undefined;
    return this.engine.stop();
  }

  stats(): StoreStats {
    return this.engine.stats();
  }

  async ping(): Promise<boolean> {
    try {
      await sql`SELECT 1`.execute(this.db);
      return true;
    } catch {
      return false;
    }
  }

  /** Deletes raw points older than the retention; returns how many. Runs hourly while started. */
  async prune(now = Date.now()): Promise<number> {
    if (!(this.o.retentionDays > 0)) return 0;
    const cutoffUs = (now - this.o.retentionDays * 86_400_000) * 1000;
    let total = 0;
    for (;;) {
      const result = await sql`
        DELETE FROM metric_points WHERE ctid = ANY(ARRAY(
          SELECT ctid FROM metric_points WHERE time < ${ts(cutoffUs)} LIMIT ${this.o.pruneChunk}
        ))`.execute(this.db);
      const deleted = Number(result.numAffectedRows ?? 0);
      total += deleted;
      if (deleted < this.o.pruneChunk) break;
    }
    if (total > 0)
      this.o.log.info({ deleted: total, retentionDays: this.o.retentionDays }, 'old metric points pruned');
    return total;
  }

  async latest(query: LatestQuery): Promise<LatestValue[]> {
    const p = planLatest(query);
    const since = p.sinceUs === undefined ? sql`` : sql`AND time >= ${ts(p.sinceUs)}`;
    const { rows } = await sql<{ tags: Record<string, string>; t: number; value: number }>`
      SELECT s.tags, p.t, p.value
      FROM metric_series s
      CROSS JOIN LATERAL (
        SELECT ${US('time')} AS t, value FROM metric_points
        WHERE series_id = s.id ${since} ORDER BY time DESC LIMIT 1
      ) p
      WHERE s.measurement = ${p.measurement} AND s.field = ${p.field} AND ${tagWhere(p.tags)}`.execute(
      this.db,
    );
    return sortSeriesInfo(
      rows.map((r) => ({
        measurement: p.measurement,
        tags: tidyTags(r.tags),
        field: p.field,
        time: r.t / 1e6,
        value: r.value,
      })),
    );
  }

  async range(query: RangeQuery): Promise<Series[]> {
    const p = planRange(query);
    const { rows } = await rangeSql(p).execute(this.db);
    const bySeries = new Map<string, Series>();
    for (const r of rows) {
      const tags = tidyTags(r.tags);
      const key = JSON.stringify(tags);
      let series = bySeries.get(key);
      if (!series) {
        series = { tags, points: [] };
        bySeries.set(key, series);
      }
      if (r.v !== null) series.points.push([r.t / 1e6, r.v]);
    }
    return sortSeries([...bySeries.values()].filter((s) => s.points.length > 0));
  }

  async listSeries(query: SeriesQuery = {}): Promise<SeriesInfo[]> {
    const measurement =
      query.measurement === undefined ? sql`true` : sql`measurement = ${cleanMeasurement(query.measurement)}`;
    const { rows } = await sql<{ measurement: string; tags: Record<string, string> }>`
      SELECT DISTINCT measurement, tags FROM metric_series
      WHERE ${measurement} AND ${tagWhere(cleanTags(query.tags))}`.execute(this.db);
    return sortSeriesInfo(rows.map((r) => ({ measurement: r.measurement, tags: tidyTags(r.tags) })));
  }

  private add(point: Point): void {
    const measurement = this.rules.measurement(point.measurement);
    const tags = this.rules.tagPairs(point.tags);
    const fields = this.rules.fields(point);
    const timeOk = typeof point.time === 'number' && Number.isFinite(point.time);
    if (measurement instanceof Refusal || tags instanceof Refusal || fields instanceof Refusal || !timeOk) {
      const refusal = [measurement, tags, fields].find((r) => r instanceof Refusal) ?? BAD_TIME;
      this.engine.refuse(point, refusal.reason);
      return;
    }
    if (!this.engine.spooling && this.engine.buffered() >= this.o.memoryPoints) {
      this.engine.counters.drop('memory', 1);
      this.engine.warnings.warn(
        'memory',
        { memoryPoints: this.o.memoryPoints },
        'points dropped: PostgreSQL is behind and memory is full',
        1,
      );
      return;
    }
    const rows = this.pending;
    const timeUs = Math.round(point.time * 1e6);
    const json = JSON.stringify(Object.fromEntries(tags));
    for (const [field, value] of fields) {
      rows.measurements.push(measurement);
      rows.fields.push(field);
      rows.tags.push(json);
      rows.timesUs.push(timeUs);
      rows.values.push(value);
    }
    rows.count += fields.length;
    if (++rows.points >= this.o.batchSize) this.engine.seal();
  }

  pendingPoints(): number {
    return this.pending.points;
  }

  takePending(): Rows {
    const rows = this.pending;
    this.pending = emptyRows();
    return rows;
  }

  /** A memory batch as the spool keeps it: its columns as gzipped JSON. */
  spoolBody(rows: Rows): Promise<Buffer> {
    const columns = Object.fromEntries(COLUMNS.map((c) => [c, rows[c]]));
    return gzip(JSON.stringify(columns), { level: 1 });
  }

  fromMemory(rows: Rows): Rows {
    return rows;
  }

  async fromSpool(body: Buffer, batch: Batch): Promise<Rows> {
    const stored = JSON.parse((await gunzip(body)).toString('utf8'));
    const rows: Rows = { ...emptyRows(), points: batch.count };
    for (const column of COLUMNS) {
      if (!Array.isArray(stored[column])) throw new Error(`spooled batch lacks ${column}`);
      (rows[column] as unknown[]) = stored[column];
    }
    rows.count = rows.values.length;
    if (COLUMNS.some((c) => rows[c].length !== rows.count))
      throw new Error('spooled batch columns differ in length');
    return rows;
  }

  async attempt(batch: Rows, points: number): Promise<'stored' | 'retry'> {
    const started = performance.now();
    try {
      const ids = await this.seriesIdsFor(batch);
      await sql`
        INSERT INTO metric_points (series_id, time, value)
        SELECT DISTINCT ON (u.s, u.t) u.s, ${ts(sql`u.t`)}, u.v
        FROM unnest(${ids}::int4[], ${batch.timesUs}::float8[], ${batch.values}::float8[]) WITH ORDINALITY AS u(s, t, v, n)
        ORDER BY u.s, u.t, u.n DESC
        ON CONFLICT (series_id, time) DO UPDATE SET value = EXCLUDED.value`.execute(this.db);
      this.engine.counters.written(points, performance.now() - started);
      if (this.engine.markRecovered()) this.o.log.info('PostgreSQL metric writes succeed again');
      return 'stored';
    } catch (err) {
      this.engine.counters.writeError();
      const code = (err as { code?: string }).code;
      const sqlState = typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
      if (!sqlState || RETRYABLE_SQLSTATE.test(code)) {
        this.engine.markFailing();
        this.engine.warnings.warn(
          'write-failed',
          { err: (err as Error).message, code, buffered: this.engine.buffered() },
          'PostgreSQL metric write failed, will retry',
        );
        return 'retry';
      }
      this.engine.counters.drop('rejected', points);
      this.engine.warnings.warn(
        `rejected:${code}`,
        { err: (err as Error).message, code },
        'points dropped: PostgreSQL refused them',
        points,
      );
      return 'stored';
    }
  }

  /** Series ids for every row, from the cache or by creating the missing series in one statement. */
  private async seriesIdsFor(batch: Rows): Promise<number[]> {
    const ids = new Array<number>(batch.count);
    let missing:
      | Map<string, { rows: number[]; measurement: string; field: string; tags: string }>
      | undefined;
    for (let i = 0; i < batch.count; i++) {
      const key = `${batch.measurements[i]}\u0000${batch.fields[i]}\u0000${batch.tags[i]}`;
      const id = this.seriesIds.get(key);
      if (id !== undefined) {
        ids[i] = id;
        continue;
      }
      missing ??= new Map();
      const entry = missing.get(key);
      if (entry) entry.rows.push(i);
      else
        missing.set(key, {
          rows: [i],
          measurement: batch.measurements[i],
          field: batch.fields[i],
          tags: batch.tags[i],
        });
    }
    if (!missing) return ids;
    let wanted = [...missing.entries()];
    // Another herd process may create the same series at the same moment; a second round then sees it.
    for (let round = 0; round < 3 && wanted.length > 0; round++) {
      const { rows } = await sql<{ i: string | number; id: number | null }>`
        WITH input AS (
          SELECT * FROM unnest(${wanted.map(([, w]) => w.measurement)}::text[], ${wanted.map(([, w]) => w.field)}::text[],
            ${wanted.map(([, w]) => w.tags)}::jsonb[]) WITH ORDINALITY AS t(measurement, field, tags, i)
        ), created AS (
          INSERT INTO metric_series (measurement, field, tags)
          SELECT measurement, field, tags FROM input ORDER BY i
          ON CONFLICT DO NOTHING
          RETURNING id, measurement, field, tags
        )
        SELECT input.i, coalesce(existing.id, created.id) AS id
        FROM input
        LEFT JOIN metric_series existing
          ON existing.measurement = input.measurement AND existing.field = input.field AND existing.tags = input.tags
        LEFT JOIN created
          ON created.measurement = input.measurement AND created.field = input.field AND created.tags = input.tags`.execute(
        this.db,
      );
      const found = new Set<number>();
      for (const r of rows) {
        if (r.id === null) continue;
        const index = Number(r.i) - 1;
        found.add(index);
        const [key, w] = wanted[index];
        if (this.seriesIds.size >= SERIES_CACHE_LIMIT) this.seriesIds.clear();
        this.seriesIds.set(key, r.id);
        for (const row of w.rows) ids[row] = r.id;
      }
      wanted = wanted.filter((_, i) => !found.has(i));
    }
    if (wanted.length > 0) throw new Error(`could not create ${wanted.length} metric series`);
    return ids;
  }
}

function emptyRows(): Rows {
  return { points: 0, count: 0, measurements: [], fields: [], tags: [], timesUs: [], values: [] };
}

/** The same semantics as influx-query.ts's rangeStatement, in SQL (see RangeQuery). */
function rangeSql(p: PlannedRange) {
  const from = ts(p.fromUs);
  const to = ts(p.toUs);
  const points = p.rate
    ? sql`
      SELECT series_id, time, value FROM (
        SELECT series_id, time,
          (value - lag(value) OVER w) / extract(epoch FROM time - lag(time) OVER w)::float8 AS value
        FROM metric_points
        WHERE series_id IN (SELECT id FROM s) AND time >= ${ts(p.lookbackUs)} AND time < ${to}
        WINDOW w AS (PARTITION BY series_id ORDER BY time)
      ) d WHERE time >= ${from} AND value >= 0`
    : sql`SELECT series_id, time, value FROM metric_points WHERE series_id IN (SELECT id FROM s) AND time >= ${from} AND time < ${to}`;
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
      SELECT s.tags, ${US('b.bucket')} AS t, b.v FROM b JOIN s ON s.id = b.series_id`;
  }
  const groupTags = p.groupBy.length
    ? sql`jsonb_build_object(${sql.join(p.groupBy.map((k) => sql`${k}::text, s.tags -> ${k}::text`))})`
    : sql`'{}'::jsonb`;
  return sql<{ tags: Record<string, string | null>; t: number; v: number | null }>`${perSeries}
    SELECT ${groupTags} AS tags, ${US('b.bucket')} AS t, ${COMBINE_SQL[p.combine]} AS v
    FROM b JOIN s ON s.id = b.series_id GROUP BY 1, b.bucket`;
}
