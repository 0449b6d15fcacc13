import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import type { Logger } from '../../lib/log.js';
import type { Registry } from '../../lib/metrics.js';
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
import { backoff, untilWoken } from './retry.js';
import { type Batch, Spool } from './spool.js';
import { RateLimitedLog, type StoreStats, WriteCounters } from './store-stats.js';

const gzip = promisify(gzipCallback);

export const INFLUX_DEFAULTS = {
  requestTimeoutMs: 30_000,
  minBackoffMs: 250,
  maxBackoffMs: 15_000,
  /** How long stop() keeps delivering before it spools the rest. */
  stopTimeoutMs: 5_000,
  // Level 1 compresses line protocol about 8:1 at a fraction of the default level's CPU.
  gzipLevel: 1,
};

export interface InfluxStoreOptions extends Partial<typeof INFLUX_DEFAULTS> {
  url: string;
  db: string;
  username?: string;
  password?: string;
  batchSize: number;
  flushMs: number;
  /** Points kept in memory while InfluxDB is down or slow; older batches beyond it go to the spool. */
  memoryPoints: number;
  spillMaxBytes: number;
  /** Unset in a process that only reads (no ingest role): nothing is spooled, what stop() cannot deliver is dropped. */
  spoolDir?: string;
  log: Logger;
  registry?: Registry;
}

/** 'requeued': the batch went to the spool (an outage began while it was in flight); deliver it from there. */
type Outcome = 'done' | 'aborted' | 'requeued';

/** While writes fail, partial batches are sealed (and so spooled) at least this often. */
const FAILING_SEAL_MS = 20;

/** Batch buffers larger than this (points far larger than collectd's) are not kept for reuse. */
const SPARE_BUFFER_BYTES = 4 * 1024 * 1024;

interface InfluxSeries {
  name?: string;
  tags?: Record<string, string>;
  columns: string[];
  values?: unknown[][];
}

/**
 * The InfluxDB v1 store. write() encodes line protocol and returns; batches are sealed by size or
 * after flushMs, gzipped, and sent one at a time in order by a single delivery loop that retries
 * network errors and 5xx with exponential backoff and jitter. Beyond `memoryPoints` the oldest batches
 * move to the disk spool; delivery always takes the oldest batch first (the one in flight, then the
 * spool, then memory), so points arrive in the order they were written, across outages and restarts.
 */
export class InfluxStore implements MetricsStore {
  readonly kind = 'influx' as const;
  private readonly o: InfluxStoreOptions & typeof INFLUX_DEFAULTS;
  private readonly rules = new PointRules();
  private readonly encoder = new LineEncoder(this.rules);
  private readonly spool: Spool;
  private readonly counters: WriteCounters;
  private readonly warnings: RateLimitedLog;
  /** Set from the default retention policy once the rollups have read or shortened it. */
  readonly retention: RetentionGuard;
  private readonly headers: Record<string, string>;
  /** Lines of the batch being filled, and their count. */
  private pending = new LineBuffer();
  private pendingPoints = 0;
  /** Buffers of sealed batches, back once compressed, for the next batches. */
  private readonly spareBuffers: LineBuffer[] = [];
  private pendingTimer?: NodeJS.Timeout;
  private memory: Batch[] = [];
  private memoryPoints = 0;
  /** The memory batch being delivered (taken out of `memory` while the spool was empty). */
  private taken?: Batch;
  private seq = 0;
  private loadedSeq = Number.MIN_SAFE_INTEGER;
  private waiters: Array<{ seq: number; resolve: () => void }> = [];
  private starting?: Promise<void>;
  private stopping?: Promise<void>;
  private loop?: Promise<void>;
  private abort?: AbortController;
  private wake?: () => void;
  private databaseReady = false;
  private failing = false;

  constructor(options: InfluxStoreOptions) {
    this.o = { ...INFLUX_DEFAULTS, ...withoutUndefined(options) } as InfluxStoreOptions &
      typeof INFLUX_DEFAULTS;
    this.headers = { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Encoding': 'gzip' };
    if (this.o.username !== undefined) {
      const credentials = Buffer.from(`${this.o.username}:${this.o.password ?? ''}`).toString('base64');
      this.headers.Authorization = `Basic ${credentials}`;
    }
    this.warnings = new RateLimitedLog(this.o.log);
    this.counters = new WriteCounters(
      'influx',
      () => ({
        bufferedPoints: this.pendingPoints + this.memoryPoints + (this.taken?.count ?? 0),
        spilledPoints: this.spool.points,
        spilledBytes: this.spool.bytes,
      }),
      this.o.registry,
    );
    this.retention = new RetentionGuard(this.counters, this.o.log);
    this.spool = new Spool(this.o.spoolDir ?? '', this.o.spillMaxBytes, this.o.memoryPoints, {
      dropped: (batch, reason) => {
        this.counters.drop('spool', batch.count);
        this.warnings.warn(
          'spool',
          { reason, dir: this.o.spoolDir },
          'points dropped: InfluxDB unreachable and the spool cannot take them',
          batch.count,
        );
        this.settle();
      },
      drained: () => this.spillOverflow(),
    });
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
        this.refuse(point, (err as Error).message);
        continue;
      }
      if (refusal) {
        this.refuse(point, refusal.reason);
        continue;
      }
      if (++this.pendingPoints >= this.o.batchSize) this.seal();
    }
    if (this.pendingPoints > 0 && !this.pendingTimer) {
      const sealMs = this.failing ? Math.min(this.o.flushMs, FAILING_SEAL_MS) : this.o.flushMs;
      this.pendingTimer = setTimeout(() => this.seal(), sealMs);
      this.pendingTimer.unref();
    }
  }

  async flush(): Promise<void> {
    this.seal();
    const target = this.seq;
    if (this.oldestPending() > target) return;
    await new Promise<void>((resolve) => this.waiters.push({ seq: target, resolve }));
  }

  start(): Promise<void> {
    if (this.stopping) return this.stopping.then(() => this.start());
    this.starting ??= (async () => {
      if (this.o.spoolDir) await this.spool.open(() => this.loadedSeq++);
      if (this.spool.points > 0)
        this.o.log.info(
          { points: this.spool.points, bytes: this.spool.bytes },
          'delivering points spooled by an earlier run',
        );
      this.spillOverflow();
      this.abort = new AbortController();
      this.loop = this.run(this.abort.signal);
    })().catch((err) => {
      this.starting = undefined;
      throw err;
    });
    return this.starting;
  }

  stop(): Promise<void> {
    if (!this.starting) return this.stopping ?? Promise.resolve();
    this.stopping ??= this.shutdown().finally(() => {
      this.starting = undefined;
      this.stopping = undefined;
    });
    return this.stopping;
  }

  stats(): StoreStats {
    return this.counters.snapshot();
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

  private refuse(point: Point, reason: string): void {
    this.counters.drop('invalid', 1);
    this.warnings.warn(
      `invalid:${reason}`,
      { reason, measurement: typeof point?.measurement === 'string' ? point.measurement : undefined },
      'point dropped: it cannot be stored',
      1,
    );
  }

  private seal(): void {
    if (this.pendingTimer) {
      clearTimeout(this.pendingTimer);
      this.pendingTimer = undefined;
    }
    if (this.pendingPoints === 0) return;
    const lines = this.pending;
    const count = this.pendingPoints;
    this.pending = this.spareBuffers.pop() ?? new LineBuffer();
    this.pendingPoints = 0;
    const body = gzip(lines.view(), { level: this.o.gzipLevel });
    // zlib reads the buffer until it is done; rejections are handled by whoever sends or spools the batch.
    const recycle = () => {
      lines.length = 0;
      if (this.spareBuffers.length < 2 && lines.bytes.length <= SPARE_BUFFER_BYTES)
        this.spareBuffers.push(lines);
    };
    body.then(recycle, recycle);
    const batch: Batch = { seq: ++this.seq, count, body };
    if (!this.spool.opened && this.memoryPoints + batch.count > this.o.memoryPoints) {
      this.counters.drop('memory', batch.count);
      this.warnings.warn(
        'memory',
        { memoryPoints: this.o.memoryPoints },
        'points dropped: the store is not started and memory is full',
        batch.count,
      );
      return;
    }
    this.memory.push(batch);
    this.memoryPoints += batch.count;
    this.spillOverflow();
    this.wake?.();
  }

  /**
   * Moves the oldest memory batches to the spool while memory holds more than its bound, and while writes fail
   * every one the spool can take at once (the rest as it drains): points of an outage then survive even a
   * SIGKILL.
   */
  private spillOverflow(): void {
    if (!this.spool.opened || this.stopping) return;
    while (this.memory.length > 0) {
      const over = this.memoryPoints > this.o.memoryPoints;
      if (!over && !(this.failing && this.spool.canTake(this.memory[0].count))) break;
      const batch = this.memory.shift()!;
      this.memoryPoints -= batch.count;
      this.spool.append(batch);
    }
  }

  private oldestPending(): number {
    return Math.min(
      this.taken?.seq ?? Infinity,
      this.spool.head?.seq ?? Infinity,
      this.memory[0]?.seq ?? Infinity,
    );
  }

  private settle(): void {
    if (this.waiters.length === 0) return;
    const oldest = this.oldestPending();
    const ready = this.waiters.filter((w) => w.seq < oldest);
    this.waiters = this.waiters.filter((w) => w.seq >= oldest);
    for (const w of ready) w.resolve();
  }

  private async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const batch = await this.next(signal);
      if (!batch) return;
      const outcome = await this.deliver(batch, signal);
      if (outcome === 'aborted') return;
      if (outcome === 'requeued') continue;
      if (batch === this.taken) this.taken = undefined;
      else this.spool.ack(batch);
      this.settle();
    }
  }

  /** The oldest batch: the spool's head (once on disk), else memory's; waits when there is none. */
  private async next(signal: AbortSignal): Promise<Batch | undefined> {
    while (!signal.aborted) {
      const head = this.spool.head;
      if (head) {
        if (await head.written) return head;
        continue;
      }
      const batch = this.memory.shift();
      if (batch) {
        this.memoryPoints -= batch.count;
        this.taken = batch;
        return batch;
      }
      await untilWoken(signal, (wake) => {
        this.wake = wake;
      });
    }
    return undefined;
  }

  private async deliver(batch: Batch, signal: AbortSignal): Promise<Outcome> {
    let body: Buffer;
    try {
      body = batch.body ? await batch.body : await this.spool.read(batch);
    } catch (err) {
      this.counters.drop('spool', batch.count);
      this.warnings.warn(
        'unreadable',
        { err: (err as Error).message },
        'points dropped: batch could not be read',
        batch.count,
      );
      return 'done';
    }
    for (let attempt = 0; ; attempt++) {
      if (signal.aborted) return 'aborted';
      if (attempt > 0 && this.requeue(batch)) return 'requeued';
      if (attempt > 0 && !(await backoff(attempt, this.o.minBackoffMs, this.o.maxBackoffMs, signal)))
        return 'aborted';
      if (!this.databaseReady && !(await this.createDatabase(signal))) continue;
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
        continue;
      }
      const latencyMs = performance.now() - started;
      if (res.ok) {
        this.counters.written(batch.count, latencyMs);
        this.recovered();
        return 'done';
      }
      const message = influxError(res, text);
      if (res.status === 404 && /database not found/.test(message)) {
        this.databaseReady = false;
        this.failed({ status: res.status, error: message }, 'InfluxDB database missing, creating it');
        continue;
      }
      if (res.status >= 500 || [401, 403, 408, 429].includes(res.status)) {
        this.failed({ status: res.status, error: message }, 'InfluxDB write failed, will retry');
        continue;
      }
      // Anything else is about the points themselves (field type conflict, parse error, too large):
      // sending them again would fail again.
      this.counters.writeError();
      const dropped = droppedByInflux(message, batch.count);
      // Points that aged past the retention while they waited (an outage, the spool) are not a data error.
      this.counters.drop(/beyond retention policy/.test(message) ? 'too_old' : 'rejected', dropped);
      if (dropped < batch.count) this.counters.written(batch.count - dropped, latencyMs);
      this.warnings.warn(
        `rejected:${res.status}`,
        { status: res.status, error: message.slice(0, 500) },
        'points dropped: InfluxDB refused them',
        dropped,
      );
      this.recovered();
      return 'done';
    }
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

  /**
   * A memory batch whose write failed goes to the spool, ahead of memory, so that what an outage holds back is
   * all on disk. Only while the spool is empty (the batch is then older than everything in it); right after the
   * failure, before anything else could be spilled.
   */
  private requeue(batch: Batch): boolean {
    if (batch !== this.taken || !this.spool.opened || this.spool.head || this.stopping) return false;
    this.taken = undefined;
    this.spool.append(batch);
    this.spillOverflow();
    return true;
  }

  private failed(fields: Record<string, unknown>, message: string): void {
    this.counters.writeError();
    this.failing = true;
    this.warnings.warn(
      'write-failed',
      { ...fields, url: this.o.url, buffered: this.stats().bufferedPoints, spilledBytes: this.spool.bytes },
      message,
    );
  }

  private recovered(): void {
    if (!this.failing) return;
    this.failing = false;
    this.o.log.info({ url: this.o.url, spilledPoints: this.spool.points }, 'InfluxDB writes succeed again');
  }

  private writeUrl(): string {
    return `${this.o.url}/write?db=${encodeURIComponent(this.o.db)}&precision=u`;
  }

  private async shutdown(): Promise<void> {
    await this.starting?.catch(() => undefined);
    this.seal();
    if (!this.failing) {
      const deadline = sleep(this.o.stopTimeoutMs, undefined, { ref: false });
      await Promise.race([this.flush(), deadline]);
    }
    this.abort?.abort();
    await this.loop;
    this.wake = undefined;
    // What is left waits on disk for the next start: the batch that was in flight first (it is older
    // than anything spilled while it was being sent), then memory, oldest first.
    const persisting: Promise<unknown>[] = [];
    const left = (this.taken?.count ?? 0) + this.memoryPoints;
    if (this.spool.opened) {
      if (this.taken) persisting.push(this.spool.writeHead(this.taken));
      for (const batch of this.memory) this.spool.append(batch, { unbounded: true });
    } else if (left > 0) {
      this.counters.drop('stopped', left);
      this.o.log.warn({ points: left }, 'points dropped: InfluxDB did not take them before herd stopped');
    }
    this.taken = undefined;
    this.memory = [];
    this.memoryPoints = 0;
    await Promise.all(persisting);
    await this.spool.close();
    if (left > 0 && this.o.spoolDir)
      this.o.log.info({ points: left, dir: this.o.spoolDir }, 'undelivered points kept in the spool');
    for (const w of this.waiters) w.resolve();
    this.waiters = [];
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

function withoutUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
