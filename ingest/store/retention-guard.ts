import type { Logger } from '../../lib/log.js';
import type { Point } from '../types.js';
import type { WriteCounters } from './store-stats.js';

/** Hosts remembered as already logged; past this the set starts again (a hostile flood of names). */
const MAX_LOGGED_HOSTS = 10_000;

/**
 * Points older than the raw retention: InfluxDB would refuse them (it drops what is older than its default
 * policy's duration) and PostgreSQL's pruning would delete them within the hour, so the store drops them
 * before sending, counted as `too_old`. The first such point of each host is logged with how far its time
 * lies behind herd's clock: old points from a live host almost always mean that host's clock is wrong.
 */
export class RetentionGuard {
  private seconds = 0;
  private readonly logged = new Set<string>();

  constructor(
    private readonly counters: WriteCounters,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** The raw retention in seconds; 0 keeps points of any age. */
  set retentionSeconds(seconds: number) {
    if (seconds === this.seconds) return;
    this.seconds = Math.max(seconds, 0);
    this.log.info(
      { retentionHours: this.seconds / 3600 || null },
      this.seconds > 0
        ? 'raw retention known: older points are dropped as too_old'
        : 'raw retention: points of any age are kept',
    );
  }

  get retentionSeconds(): number {
    return this.seconds;
  }

  /** The oldest time (s since the epoch) a point written now may carry; -Infinity when any age is kept. */
  cutoff(): number {
    return this.seconds > 0 ? this.now() / 1000 - this.seconds : Number.NEGATIVE_INFINITY;
  }

  /** Counts a point older than `cutoff()`, and logs the first one of its host. */
  refuse(point: Point): void {
    this.counters.drop('too_old', 1);
    const host = point.tags?.host ?? '';
    if (this.logged.has(host)) return;
    if (this.logged.size >= MAX_LOGGED_HOSTS) this.logged.clear();
    this.logged.add(host);
    const offset = Math.round(point.time - this.now() / 1000);
    this.log.warn(
      {
        host,
        clockOffsetSeconds: offset,
        pointTime: new Date(point.time * 1000).toISOString(),
        retentionHours: this.seconds / 3600,
      },
      `points of host ${JSON.stringify(host)} are ${describeOffset(-offset)} behind herd's clock, older than the raw retention, and are dropped: check that host's clock (NTP)`,
    );
  }
}

function describeOffset(seconds: number): string {
  if (seconds >= 2 * 86_400) return `${Math.round(seconds / 86_400)} days`;
  if (seconds >= 2 * 3600) return `${Math.round(seconds / 3600)} hours`;
  return `${seconds} s`;
}
