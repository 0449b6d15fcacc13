import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import type { Point } from '../types.js';
import { latestStatement, rangeStatement, seriesStatement } from './influx-query.js';
import { LineBuffer, LineEncoder, parseSeriesKey } from './line-protocol.js';
import type {
  LatestQuery,
  LatestValue,
  MetricsStore,
  RangeQuery,
  Series,
  SeriesInfo,
  SeriesQuery,
} from './metrics-store.js';
import { PointRules, type Refusal } from './point-rules.js';
import {
  cleanMeasurement,
  cleanTags,
  planLatest,
  planRange,
  sortSeries,
  sortSeriesInfo,
  tidyTags,
} from './range-query.js';
import { RetentionGuard } from './retention-guard.js';
import type { StoreStats } from './store-stats.js';
import {
  ENGINE_DEFAULTS,
  WriteEngine,
  type WriterOptions,
  type WriteTarget,
  withoutUndefined,
} from './write-engine.js';

const gzip = promisify(gzipCallback);

export const INFLUX_DEFAULTS = {
  ...ENGINE_DEFAULTS,
  requestTimeoutMs: 30_000,
  // Level 1 compresses line protocol about 8:1 at a fraction of the default level's CPU.
  gzipLevel: 1,
};

export interface InfluxStoreOptions extends Partial<typeof INFLUX_DEFAULTS>, WriterOptions {
  url: string;
  db: string;
  username?: string;
  password?: string;
}

/** Batch buffers larger than this (points far larger than collectd's) are not kept for reuse. */
const SPARE_BUFFER_BYTES = 4 * 1024 * 1024;

interface InfluxSeries {
  name?: string;
  tags?: Record<string, string>;
  columns: string[];
  values?: unknown[][];
}

/**
 * The InfluxDB v1 store. write() encodes line protocol and returns; the write engine (write-engine.ts) seals
 * batches by size or after flushMs, which this store gzips, and delivers them in order through `attempt`, one
 * POST /write each; network errors, 5xx, 401/403/408/429 are retried.
 */
export class InfluxStore implements MetricsStore, WriteTarget<Promise<Buffer>, Buffer> {
  readonly kind = 'influx' as const;
  private readonly o: InfluxStoreOptions & typeof INFLUX_DEFAULTS;
  private readonly rules = new PointRules();
  private readonly encoder = new LineEncoder(this.rules);
  private readonly engine: WriteEngine<Promise<Buffer>, Buffer>;
  /** Set from the default retention policy once the rollups have read or shortened it. */
  readonly retention: RetentionGuard;
  private readonly headers: Record<string, string>;
  /** Lines of the batch being filled, and their count. */
  private pending = new LineBuffer();
  private pendingCount = 0;
  /** Buffers of sealed batches, back once compressed, for the next batches. */
  private readonly spareBuffers: LineBuffer[] = [];
  private databaseReady = false;

  constructor(options: InfluxStoreOptions) {
    this.o = { ...INFLUX_DEFAULTS, ...withoutUndefined(options) } as InfluxStoreOptions &
      typeof INFLUX_DEFAULTS;
    this.headers = { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Encoding': 'gzip' };
    if (this.o.username !== undefined) {
      const credentials = Buffer.from(`${this.o.username}:${this.o.password ?? ''}`).toString('base64');
      this.headers.Authorization = `Basic ${credentials}`;
    }
    this.engine = new WriteEngine({ ...this.o, store: 'influx', system: 'InfluxDB', what: 'points' }, this);
    this.retention = new RetentionGuard(this.engine.counters, this.o.log);
  }

  write(points: readonly Point[]): void {
    const cutoff = this.retention.cutoff();
    for (const point of points) {
      if (point?.time < cutoff) {
        this.retention.refuse(point);
        continue;
      }
      let refusal: Refusal | undefined;
      try {
        refusal = this.encoder.write(point, this.pending);
      } catch (err) {
        this.engine.refuse(point, (err as Error).message);
        continue;
      }
      if (refusal) {
        this.engine.refuse(point, refusal.reason);
        continue;
      }
      if (++this.pendingCount >= this.o.batchSize) this.engine.seal();
    }
    this.engine.scheduleSeal();
  }

  flush(): Promise<void> {
    return this.engine.flush();
  }

  start(): Promise<void> {
    return this.engine.start();
  }

  stop(): Promise<void> {
    return this.engine.stop();
  }

  stats(): StoreStats {
    return this.engine.stats();
  }

  async ping(): Promise<boolean> {
    try {
      const res = await fetch(`${this.o.url}/ping`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      return res.status === 204;
    } catch {
      return false;
    }
  }

  async latest(query: LatestQuery): Promise<LatestValue[]> {
    const plan = planLatest(query);
    const out: LatestValue[] = [];
    for (const s of await this.query(latestStatement(plan))) {
      for (const [t, v] of s.values ?? []) {
        if (typeof v !== 'number') continue;
        out.push({
          measurement: plan.measurement,
          tags: tidyTags(s.tags),
          field: plan.field,
          time: Number(t) / 1e6,
          value: v,
        });
      }
    }
    return sortSeriesInfo(out);
  }

  async range(query: RangeQuery): Promise<Series[]> {
    const plan = planRange(query);
    const out: Series[] = [];
    for (const s of await this.query(rangeStatement(plan))) {
      const points: Array<[number, number]> = [];
      for (const [t, v] of s.values ?? []) {
        if (typeof v === 'number' && Number(t) >= plan.fromUs) points.push([Number(t) / 1e6, v]);
      }
      if (points.length) out.push({ tags: tidyTags(s.tags), points });
    }
    return sortSeries(out);
  }

  async listSeries(query: SeriesQuery = {}): Promise<SeriesInfo[]> {
    const statement = seriesStatement({
      measurement: query.measurement === undefined ? undefined : cleanMeasurement(query.measurement),
      tags: cleanTags(query.tags),
    });
    const out: SeriesInfo[] = [];
    for (const s of await this.query(statement)) {
      for (const [key] of s.values ?? []) if (typeof key === 'string') out.push(parseSeriesKey(key));
    }
    return sortSeriesInfo(out.map((s) => ({ measurement: s.measurement, tags: tidyTags(s.tags) })));
  }

  /** Runs one InfluxQL statement against the database; throws with InfluxDB's message on failure. */
  async query(statement: string): Promise<InfluxSeries[]> {
    const body = new URLSearchParams({ q: statement, db: this.o.db, epoch: 'u' });
    const res = await fetch(`${this.o.url}/query`, {
      method: 'POST',
      body,
      headers: this.headers.Authorization ? { Authorization: this.headers.Authorization } : {},
      signal: AbortSignal.timeout(this.o.requestTimeoutMs),
    });
    const text = await res.text();
    let json: { error?: string; results?: Array<{ error?: string; series?: InfluxSeries[] }> };
    try {
      json = JSON.parse(text);
    } catch {
      throw new Error(`InfluxDB query failed with HTTP ${res.status}: ${text.slice(0, 300)}`);
    }
    const error = json.error ?? json.results?.[0]?.error;
    if (error) {
      // A database that has not been written to yet holds no series: an empty answer, as on PostgreSQL.
      if (/database not found/.test(error)) return [];
      throw new Error(`InfluxDB query failed: ${error}`);
    }
    if (!res.ok) throw new Error(`InfluxDB query failed with HTTP ${res.status}`);
    return json.results?.[0]?.series ?? [];
  }

  pendingPoints(): number {
    return this.pendingCount;
  }

  takePending(): Promise<Buffer> | undefined {
    const lines = this.pending;
    const count = this.pendingCount;
    this.pending = this.spareBuffers.pop() ?? new LineBuffer();
    this.pendingCount = 0;
    const body = gzip(lines.view(), { level: this.o.gzipLevel });
    // zlib reads the buffer until it is done; rejections are handled by whoever sends or spools the batch.
    const recycle = () => {
      lines.length = 0;
      if (this.spareBuffers.length < 2 && lines.bytes.length <= SPARE_BUFFER_BYTES)
        this.spareBuffers.push(lines);
    };
    body.then(recycle, recycle);
    if (!this.engine.spooling && this.engine.sealedPoints + count > this.o.memoryPoints) {
      this.engine.counters.drop('memory', count);
      this.engine.warnings.warn(
        'memory',
        { memoryPoints: this.o.memoryPoints },
        'points dropped: the store is not started and memory is full',
        count,
      );
      return undefined;
    }
    return body;
  }

  /** The gzipped body is what the spool keeps. */
  spoolBody(body: Promise<Buffer>): Promise<Buffer> {
    return body;
  }

  fromMemory(body: Promise<Buffer>): Promise<Buffer> {
    return body;
  }

  fromSpool(body: Buffer): Buffer {
    return body;
  }

  async attempt(body: Buffer, points: number, signal: AbortSignal): Promise<'stored' | 'retry' | 'aborted'> {
    if (!this.databaseReady && !(await this.createDatabase(signal))) return 'retry';
    const started = performance.now();
    let res: Response;
    let text: string;
    try {
      res = await fetch(this.writeUrl(), {
        method: 'POST',
        body: body as Buffer<ArrayBuffer>,
        headers: this.headers,
        signal: AbortSignal.any([signal, AbortSignal.timeout(this.o.requestTimeoutMs)]),
      });
      text = await res.text();
    } catch (err) {
      if (signal.aborted) return 'aborted';
      this.failed({ err: describe(err) }, 'InfluxDB write failed, will retry');
      return 'retry';
    }
    const latencyMs = performance.now() - started;
    const { counters } = this.engine;
    if (res.ok) {
      counters.written(points, latencyMs);
      this.recovered();
      return 'stored';
    }
    const message = influxError(res, text);
    if (res.status === 404 && /database not found/.test(message)) {
      this.databaseReady = false;
      this.failed({ status: res.status, error: message }, 'InfluxDB database missing, creating it');
      return 'retry';
    }
    if (res.status >= 500 || [401, 403, 408, 429].includes(res.status)) {
      this.failed({ status: res.status, error: message }, 'InfluxDB write failed, will retry');
      return 'retry';
    }
    // Anything else is about the points themselves (field type conflict, parse error, too large):
    // sending them again would fail again.
    counters.writeError();
    const dropped = droppedByInflux(message, points);
    // Points that aged past the retention while they waited (an outage, the spool) are not a data error.
    counters.drop(/beyond retention policy/.test(message) ? 'too_old' : 'rejected', dropped);
    if (dropped < points) counters.written(points - dropped, latencyMs);
    this.engine.warnings.warn(
      `rejected:${res.status}`,
      { status: res.status, error: message.slice(0, 500) },
      'points dropped: InfluxDB refused them',
      dropped,
    );
    this.recovered();
    return 'stored';
  }

  /** CREATE DATABASE, as InfluxDB's collectd service does. Without the privilege, writes go ahead anyway. */
  private async createDatabase(signal: AbortSignal): Promise<boolean> {
    try {
      const res = await fetch(`${this.o.url}/query`, {
        method: 'POST',
        body: new URLSearchParams({
          q: `CREATE DATABASE "${this.o.db.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`,
        }),
        headers: this.headers.Authorization ? { Authorization: this.headers.Authorization } : {},
        signal: AbortSignal.any([signal, AbortSignal.timeout(this.o.requestTimeoutMs)]),
      });
      const text = await res.text();
      if (res.status >= 500) {
        this.failed(
          { status: res.status, error: influxError(res, text) },
          'InfluxDB could not create the database, will retry',
        );
        return false;
      }
      const error = res.ok ? JSON.parse(text).results?.[0]?.error : influxError(res, text);
      if (error)
        this.o.log.warn({ db: this.o.db, error }, 'could not create the InfluxDB database; writing anyway');
      this.databaseReady = true;
      return true;
    } catch (err) {
      if (!signal.aborted) this.failed({ err: describe(err) }, 'InfluxDB unreachable, will retry');
      return false;
    }
  }

  private failed(fields: Record<string, unknown>, message: string): void {
    this.engine.counters.writeError();
    this.engine.markFailing();
    this.engine.warnings.warn(
      'write-failed',
      {
        ...fields,
        url: this.o.url,
        buffered: this.engine.buffered(),
        spilledBytes: this.engine.spilledBytes,
      },
      message,
    );
  }

  private recovered(): void {
    if (!this.engine.markRecovered()) return;
    this.o.log.info(
      { url: this.o.url, spilledPoints: this.engine.spilledPoints },
      'InfluxDB writes succeed again',
    );
  }

  private writeUrl(): string {
    return `${this.o.url}/write?db=${encodeURIComponent(this.o.db)}&precision=u`;
  }
}

function influxError(res: Response, text: string): string {
  try {
    const error = JSON.parse(text).error;
    if (typeof error === 'string') return error;
  } catch {}
  return res.headers.get('X-Influxdb-Error') ?? (text.slice(0, 300) || `HTTP ${res.status}`);
}

/** How many points of a refused batch InfluxDB dropped (`dropped=N`; parse errors name each line). */
function droppedByInflux(message: string, count: number): number {
  const dropped = /dropped=(\d+)/.exec(message);
  const unparsable = message.match(/unable to parse/g)?.length ?? 0;
  if (!dropped && !unparsable) return count;
  return Math.min(count, Number(dropped?.[1] ?? 0) + unparsable);
}

function describe(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  return e.cause?.code ?? e.cause?.message ?? e.message ?? String(err);
}
