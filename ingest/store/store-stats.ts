import type { Logger } from '../../lib/log.js';
import { Counter, Gauge, Histogram, type Registry } from '../../lib/metrics.js';

/**
 * Why points were dropped: `invalid` (refused by point-rules), `too_old` (older than the raw retention:
 * a sender's clock is wrong, see retention-guard.ts), `rejected` (the database refused them: a 4xx from
 * InfluxDB such as a field type conflict, a data error from PostgreSQL), `memory` (the in-memory bound was
 * full), `spool` (the disk spool was full or unwritable), `stopped` (PostgreSQL store stopped before it
 * could deliver them).
 */
export type DropReason = 'invalid' | 'too_old' | 'rejected' | 'memory' | 'spool' | 'stopped';
const DROP_REASONS: DropReason[] = ['invalid', 'too_old', 'rejected', 'memory', 'spool', 'stopped'];

const LATENCY_BUCKETS_MS = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000];

export interface StoreStats {
  store: 'influx' | 'postgres';
  /** Points the database accepted. */
  pointsWritten: number;
  batchesWritten: number;
  /** Failed write attempts (each retry counts). */
  writeErrors: number;
  /** Points waiting in memory. */
  bufferedPoints: number;
  /** Points and bytes waiting in the disk spool (InfluxDB only). */
  spilledPoints: number;
  spilledBytes: number;
  droppedPoints: number;
  dropped: Record<DropReason, number>;
  lastWriteLatencyMs: number | null;
  /** Successful write requests by duration; bucket counts are cumulative (Prometheus style). */
  writeLatency: { count: number; sumMs: number; buckets: Array<{ leMs: number; count: number }> };
}

export interface Backlog {
  bufferedPoints: number;
  spilledPoints: number;
  spilledBytes: number;
}

/** The write path's counters, kept as plain numbers for `stats()` and mirrored into Prometheus. */
export class WriteCounters {
  private pointsWritten = 0;
  private batchesWritten = 0;
  private writeErrors = 0;
  private readonly dropped: Record<DropReason, number> = {
    invalid: 0,
    too_old: 0,
    rejected: 0,
    memory: 0,
    spool: 0,
    stopped: 0,
  };
  private lastLatencyMs: number | null = null;
  private readonly latencyCounts = LATENCY_BUCKETS_MS.map(() => 0);
  private latencyCount = 0;
  private latencySumMs = 0;
  private readonly prom?: {
    written: Counter<'store'>;
    errors: Counter<'store'>;
    dropped: Counter<'store' | 'reason'>;
    latency: Histogram<'store'>;
  };

  constructor(
    private readonly store: 'influx' | 'postgres',
    private readonly backlog: () => Backlog,
    registry?: Registry,
  ) {
    if (!registry) return;
    const labels = { store };
    const gauge = (name: string, help: string, read: (b: Backlog) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['store'],
        registers: [registry],
        collect() {
          this.set(labels, read(backlog()));
        },
      });
    gauge(
      'herd_metrics_buffered_points',
      'Points waiting in memory for the metrics store',
      (b) => b.bufferedPoints,
    );
    gauge('herd_metrics_spilled_points', 'Points waiting in the disk spool', (b) => b.spilledPoints);
    gauge('herd_metrics_spilled_bytes', 'Bytes in the disk spool', (b) => b.spilledBytes);
    const written = new Counter({
      name: 'herd_metrics_points_written_total',
      help: 'Points the metrics store accepted',
      labelNames: ['store'],
      registers: [registry],
    });
    const errors = new Counter({
      name: 'herd_metrics_write_errors_total',
      help: 'Failed write attempts to the metrics store (each retry counts)',
      labelNames: ['store'],
      registers: [registry],
    });
    const dropped = new Counter({
      name: 'herd_metrics_dropped_points_total',
      help: 'Points dropped on the way to the metrics store, by reason',
      labelNames: ['store', 'reason'],
      registers: [registry],
    });
    for (const reason of DROP_REASONS) dropped.inc({ store, reason }, 0);
    written.inc(labels, 0);
    errors.inc(labels, 0);
    const latency = new Histogram({
      name: 'herd_metrics_write_duration_seconds',
      help: 'Duration of successful write requests to the metrics store',
      labelNames: ['store'],
      buckets: LATENCY_BUCKETS_MS.map((ms) => ms / 1000),
      registers: [registry],
    });
    this.prom = { written, errors, dropped, latency };
  }

  written(points: number, latencyMs: number): void {
    this.pointsWritten += points;
    this.batchesWritten++;
    this.lastLatencyMs = latencyMs;
    this.latencyCount++;
    this.latencySumMs += latencyMs;
    for (let i = 0; i < LATENCY_BUCKETS_MS.length; i++)
      if (latencyMs <= LATENCY_BUCKETS_MS[i]) this.latencyCounts[i]++;
    this.prom?.written.inc({ store: this.store }, points);
    this.prom?.latency.observe({ store: this.store }, latencyMs / 1000);
  }

  writeError(): void {
    this.writeErrors++;
    this.prom?.errors.inc({ store: this.store });
  }

  drop(reason: DropReason, points: number): void {
    if (points <= 0) return;
    this.dropped[reason] += points;
    this.prom?.dropped.inc({ store: this.store, reason }, points);
  }

  snapshot(): StoreStats {
    const dropped = { ...this.dropped };
    return {
      store: this.store,
      pointsWritten: this.pointsWritten,
      batchesWritten: this.batchesWritten,
      writeErrors: this.writeErrors,
      ...this.backlog(),
      droppedPoints: DROP_REASONS.reduce((sum, r) => sum + dropped[r], 0),
      dropped,
      lastWriteLatencyMs: this.lastLatencyMs,
      writeLatency: {
        count: this.latencyCount,
        sumMs: this.latencySumMs,
        buckets: LATENCY_BUCKETS_MS.map((leMs, i) => ({ leMs, count: this.latencyCounts[i] })),
      },
    };
  }
}

/**
 * Warnings that can repeat thousands of times a second (drops while a database is down): the first
 * is logged at once, the rest summed and logged at most once per interval with how many were folded in.
 */
export class RateLimitedLog {
  private readonly last = new Map<string, { at: number; suppressed: number; points: number }>();

  constructor(
    private readonly log: Logger,
    private readonly intervalMs = 10_000,
  ) {}

  warn(key: string, fields: Record<string, unknown>, message: string, points = 0): void {
    const now = Date.now();
    const entry = this.last.get(key);
    if (entry && now - entry.at < this.intervalMs) {
      entry.suppressed++;
      entry.points += points;
      return;
    }
    const folded =
      entry && entry.suppressed > 0
        ? { suppressedSinceLast: entry.suppressed, suppressedPoints: entry.points }
        : {};
    this.last.set(key, { at: now, suppressed: 0, points: 0 });
    this.log.warn({ ...fields, ...(points ? { points } : {}), ...folded }, message);
  }
}
