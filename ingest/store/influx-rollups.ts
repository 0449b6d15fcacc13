import type { Logger } from '../../lib/log.js';
import { quoteIdent, tagConditions } from './influx-query.js';
import type { InfluxStore } from './influx-store.js';
import type { RangeQuery, Series } from './metrics-store.js';
import { type PlannedRange, planRange, sortSeries, tidyTags } from './range-query.js';
import {
  byTags,
  type PercentileQuery,
  type PercentileValue,
  percentileWindow,
  type RollupSettings,
  type Rollups,
} from './rollups.js';

/** The retention policy holding the rollups, and the prefix of the continuous query filling it. */
export const ROLLUP_RP = 'herd_rollup';
const CQ_PREFIX = 'herd_rollup_';
const RETRY_MS = 60_000;
/** Backfills and refreshes run in slices of this many seconds, so InfluxDB never holds a huge result. */
const SLICE_SECONDS = 86_400;

/**
 * Rollups on InfluxDB: a retention policy `herd_rollup` of `retentionDays`, filled by a continuous query
 * `SELECT mean(*), max(*) … GROUP BY time(step), *` from the default retention policy (so each field `f` has
 * `mean_f` and `max_f`; RESAMPLE FOR two buckets takes late points in). When the query is first created the
 * raw points already there are rolled up too, before the default policy is shortened to the raw retention.
 */
export class InfluxRollups implements Rollups {
  readonly kind = 'influx' as const;
  private rawRp = 'autogen';
  private ready?: Promise<void>;
  private retry?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly store: InfluxStore,
    private readonly db: string,
    readonly settings: RollupSettings,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  start(): Promise<void> {
    this.stopped = false;
    this.ready ??= this.setUp().catch((err) => {
      this.ready = undefined;
      if (this.stopped) return;
      this.log.warn({ err: (err as Error).message }, 'could not set up InfluxDB rollups; will retry');
      this.retry = setTimeout(() => void this.start(), RETRY_MS);
      this.retry.unref();
    });
    return this.ready;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
  }

  doneUntil(): number {
    // The continuous query runs at each bucket boundary for the buckets just closed.
    const step = this.settings.stepSeconds;
    return Math.floor(this.now() / 1000 / step) * step - step;
  }

  async refresh(from: number, to: number): Promise<void> {
    const step = this.settings.stepSeconds;
    const start = Math.floor(from / step) * step;
    for (let t = start; t < to; t += SLICE_SECONDS) {
      const end = Math.min(t + SLICE_SECONDS, Math.ceil(to / step) * step);
      await this.store.query(
        `${this.select()} WHERE time >= ${t}s AND time < ${end}s GROUP BY time(${step}s), *`,
      );
    }
  }

  async range(query: RangeQuery): Promise<Series[]> {
    const plan = planRange(query);
    const out: Series[] = [];
    for (const s of await this.store.query(this.rangeStatement(plan))) {
      const points: Array<[number, number]> = [];
      for (const [t, v] of s.values ?? []) if (typeof v === 'number') points.push([Number(t) / 1e6, v]);
      if (points.length) out.push({ tags: tidyTags(s.tags), points });
    }
    return sortSeries(out);
  }

  async percentiles(q: PercentileQuery): Promise<PercentileValue[]> {
    const window = percentileWindow(this, q);
    if (!window) return [];
    const p = window.plan;
    const source = `${quoteIdent(this.db)}.${quoteIdent(ROLLUP_RP)}.${quoteIdent(p.measurement)}`;
    const column = quoteIdent(`mean_${p.field}`);
    const conditions = [...tagConditions(p.tags), `time >= ${window.fromUs}u`, `time < ${window.toUs}u`];
    const statement = `SELECT percentile(${column}, ${Number(q.percentile)}) AS "v", count(${column}) AS "n" FROM ${source} WHERE ${conditions.join(' AND ')} GROUP BY *`;
    const out: PercentileValue[] = [];
    for (const s of await this.store.query(statement)) {
      const [row] = s.values ?? [];
      const [, value, buckets] = row ?? [];
      if (typeof value === 'number' && typeof buckets === 'number' && buckets > 0)
        out.push({ tags: tidyTags(s.tags), value, buckets });
    }
    return byTags(out);
  }

  private select(): string {
    const db = quoteIdent(this.db);
    return `SELECT mean(*), max(*) INTO ${db}.${quoteIdent(ROLLUP_RP)}.:MEASUREMENT FROM ${db}.${quoteIdent(this.rawRp)}./.*/`;
  }

  private async setUp(): Promise<void> {
    const db = quoteIdent(this.db);
    const { stepSeconds, retentionDays, rawRetentionHours } = this.settings;
    await this.store.query(`CREATE DATABASE ${db}`);
    const policies = await this.policies();
    this.rawRp = policies.find((p) => p.isDefault)?.name ?? 'autogen';

    const rollup = policies.find((p) => p.name === ROLLUP_RP);
    const duration = `DURATION ${retentionDays}d REPLICATION 1`;
    if (!rollup)
      await this.store.query(`CREATE RETENTION POLICY ${quoteIdent(ROLLUP_RP)} ON ${db} ${duration}`);
    else if (rollup.seconds !== retentionDays * 86_400)
      await this.store.query(`ALTER RETENTION POLICY ${quoteIdent(ROLLUP_RP)} ON ${db} ${duration}`);

    const name = `${CQ_PREFIX}${stepSeconds}s_${this.rawRp}`;
    const existing = await this.continuousQueries();
    for (const other of existing.filter((n) => n.startsWith(CQ_PREFIX) && n !== name)) {
      await this.store.query(`DROP CONTINUOUS QUERY ${quoteIdent(other)} ON ${db}`);
    }
    if (!existing.includes(name)) {
      await this.store.query(
        `CREATE CONTINUOUS QUERY ${quoteIdent(name)} ON ${db} RESAMPLE EVERY ${stepSeconds}s FOR ${2 * stepSeconds}s ` +
          `BEGIN ${this.select()} GROUP BY time(${stepSeconds}s), * END`,
      );
      // What is already there is rolled up once, before the raw policy may be shortened below.
      const now = this.now() / 1000;
      const raw = policies.find((p) => p.name === this.rawRp);
      const reach = Math.min(retentionDays * 86_400, raw?.seconds || Number.POSITIVE_INFINITY);
      await this.refresh(now - reach, now);
      this.log.info({ query: name }, 'InfluxDB rollups created');
    }

    const raw = policies.find((p) => p.name === this.rawRp);
    this.store.retention.retentionSeconds =
      rawRetentionHours > 0 ? rawRetentionHours * 3600 : (raw?.seconds ?? 0);
    if (rawRetentionHours > 0 && raw && raw.seconds !== rawRetentionHours * 3600) {
      // The shard group must be shorter than the policy; hours keep deletion close to the retention.
      const shard = rawRetentionHours <= 7 * 24 ? '1h' : '1d';
      await this.store.query(
        `ALTER RETENTION POLICY ${quoteIdent(this.rawRp)} ON ${db} DURATION ${rawRetentionHours}h SHARD DURATION ${shard}`,
      );
      this.log.info({ policy: this.rawRp, hours: rawRetentionHours }, 'InfluxDB raw retention set');
    }
  }

  private async policies(): Promise<Array<{ name: string; seconds: number; isDefault: boolean }>> {
    const [series] = await this.store.query(`SHOW RETENTION POLICIES ON ${quoteIdent(this.db)}`);
    if (!series) return [];
    const at = (column: string) => series.columns.indexOf(column);
    return (series.values ?? []).map((row) => ({
      name: String(row[at('name')]),
      seconds: durationSeconds(String(row[at('duration')])),
      isDefault: row[at('default')] === true,
    }));
  }

  private async continuousQueries(): Promise<string[]> {
    const all = await this.store.query('SHOW CONTINUOUS QUERIES');
    const mine = all.find((s) => s.name === this.db);
    return (mine?.values ?? []).map((row) => String(row[0]));
  }

  /** Like rangeStatement (influx-query.ts), over the rollup policy's mean_/max_ fields. */
  private rangeStatement(p: PlannedRange): string {
    const source = `${quoteIdent(this.db)}.${quoteIdent(ROLLUP_RP)}.${quoteIdent(p.measurement)}`;
    const inRange = [`time >= ${p.fromUs}u`, `time < ${p.toUs}u`];
    const bucket = `time(${p.stepUs}u)`;
    let from = source;
    let column = quoteIdent(`${p.agg === 'max' && !p.rate ? 'max' : 'mean'}_${p.field}`);
    let conditions = [...tagConditions(p.tags), ...inRange];
    if (p.rate) {
      const lookbackUs = p.fromUs - Math.max(p.stepUs, 2 * this.settings.stepSeconds * 1e6);
      const window = [...tagConditions(p.tags), `time >= ${lookbackUs}u`, `time < ${p.toUs}u`];
      from = `(SELECT non_negative_derivative(${column}, 1s) AS "r" FROM ${source} WHERE ${window.join(' AND ')} GROUP BY *)`;
      column = '"r"';
      conditions = inRange;
    }
    const perSeries = `SELECT ${p.agg}(${column}) AS "v" FROM ${from} WHERE ${conditions.join(' AND ')} GROUP BY ${bucket}, * fill(none)`;
    if (!p.groupBy) return perSeries;
    const by = [bucket, ...p.groupBy.map(quoteIdent)].join(', ');
    if (!p.rate && p.stepUs === this.settings.stepSeconds * 1e6) {
      // One rollup point per series and bucket: its value is the series' bucket value whatever `agg`, so the
      // series combine directly, without the subquery (a pool graph over a day: ten times faster).
      return `SELECT ${p.combine}(${column}) AS "v" FROM ${source} WHERE ${conditions.join(' AND ')} GROUP BY ${by} fill(none)`;
    }
    return `SELECT ${p.combine}("v") AS "v" FROM (${perSeries}) WHERE ${inRange.join(' AND ')} GROUP BY ${by} fill(none)`;
  }
}

/** InfluxDB's `8760h0m0s` (0s: forever) in seconds. */
function durationSeconds(text: string): number {
  const match = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text);
  if (!match) return 0;
  return Number(match[1] ?? 0) * 3600 + Number(match[2] ?? 0) * 60 + Number(match[3] ?? 0);
}
