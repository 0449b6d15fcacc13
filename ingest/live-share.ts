import os from 'node:os';
import type { Logger } from '../lib/log.js';
import { Loop } from '../lib/loop.js';
import type { Database } from '../schema/db.js';
import {
  pruneLiveSummaries,
  readLiveSummaries,
  type SharedHostSummary,
  upsertLiveSummaries,
} from './live-share.repository.js';
import type { GuestLiveSummary, HostLiveSummary, LiveSeries, LiveView } from './live-view.js';

/**
 * The live view shared between herd processes through PostgreSQL (`live_host_summaries`). Each ingest process
 * publishes the summaries of the hosts it hears (LivePublisher); every process reads what the others published
 * (SharedLiveView) and answers, per host, the newer of its own figure and the shared one. So an `--only api`
 * process places VMs from the load an ingest process saw, no older than one collectd interval plus the publish
 * period plus the read period.
 */

/** How often a process reads what the others published: shared figures are at most this much older than the table. */
export const LIVE_SHARE_READ_MS = 1_000;
/** Each read starts this far before the last one (the database's clock), for upserts that committed late. */
const READ_MARGIN_MS = 2_000;
/** Rows and cached entries not published for this long are forgotten. */
const KEEP_MS = 3_600_000;
/** How often a publisher deletes rows no process published for KEEP_MS. */
const PRUNE_EVERY_MS = 60_000;
/** A failing read or publish (the database away) is logged at most this often. */
const WARN_EVERY_MS = 60_000;

/** Guests (collectd's virt plugin with HostnameFormat uuid) are named by UUID: they are not hosts. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** This process, as publishers are named: `<machine>:<pid>`. */
export const processName = (): string => `${os.hostname()}:${process.pid}`;

const SUMMARY_FIELDS = [
  'lastSeen',
  'interval',
  'load1',
  'load5',
  'load15',
  'memoryFreeMiB',
  'memoryUsedMiB',
  'cpuBusyPercent',
  'cpuCount',
] as const satisfies ReadonlyArray<keyof HostLiveSummary>;

function sameSummary(a: HostLiveSummary, b: HostLiveSummary): boolean {
  if (a === b) return true;
  for (const f of SUMMARY_FIELDS) if (a[f] !== b[f]) return false;
  return true;
}

function throttledWarning(log: Logger, message: string): (err: unknown) => void {
  let last = 0;
  return (err) => {
    const now = Date.now();
    if (now - last < WARN_EVERY_MS) return;
    last = now;
    log.warn({ err: (err as Error).message }, message);
  };
}

export interface LivePublisherOptions {
  db: Database;
  liveView: Pick<LiveView, 'hostNames' | 'hostSummary'>;
  log: Logger;
  /** How often the changed summaries are upserted (HERD_LIVE_PUBLISH_MS). */
  periodMs: number;
  /** Who publishes (default: this process, `<machine>:<pid>`). */
  publisher?: string;
}

/**
 * Publishes, every period, the summaries of the hosts whose figures changed since the last publish (in practice:
 * the hosts heard from since), in one multi-row upsert. A silent host is not written again, so its row ages and
 * readers' age check (LIVE_MAX_AGE_INTERVALS) drops it as it drops a silent host of their own live view.
 */
export class LivePublisher {
  readonly publisher: string;
  private readonly published = new Map<string, HostLiveSummary>();
  private readonly repeat: Loop;
  private lastPrune = 0;

  constructor(private readonly o: LivePublisherOptions) {
    this.publisher = o.publisher ?? processName();
    this.repeat = new Loop(o.periodMs, () => this.publish());
  }

  start(): void {
    this.repeat.start(throttledWarning(this.o.log, 'could not publish the live view'));
  }

  /** Stops the timer, waiting for a publish under way. Safe to call twice. */
  stop(): Promise<void> {
    return this.repeat.stop();
  }

  /** One period's work: upserts the changed summaries; answers how many rows were written. */
  async publish(): Promise<number> {
    const view = this.o.liveView;
    const changed: Array<{ hostname: string; summary: HostLiveSummary }> = [];
    const names = view.hostNames();
    for (const hostname of names) {
      if (UUID.test(hostname)) continue;
      const summary = view.hostSummary(hostname);
      if (!summary) continue;
      const before = this.published.get(hostname);
      if (before === undefined || !sameSummary(before, summary)) changed.push({ hostname, summary });
    }
    const written = await upsertLiveSummaries(this.o.db, this.publisher, changed);
    for (const c of changed) this.published.set(c.hostname, c.summary);
    if (Date.now() - this.lastPrune >= PRUNE_EVERY_MS) {
      this.lastPrune = Date.now();
      // Hosts the live view forgot are forgotten here too, and rows nobody published for long are deleted.
      if (this.published.size > names.length) {
        const current = new Set(names);
        for (const name of this.published.keys()) if (!current.has(name)) this.published.delete(name);
      }
      await pruneLiveSummaries(this.o.db, KEEP_MS);
    }
    return written;
  }
}

export interface SharedLiveViewOptions {
  db: Database;
  /** The process's own live view (ingest), when it has one. */
  local?: LiveView;
  log: Logger;
  /** The process's own publisher name: its rows are not read back (the local view has them, fresher). */
  self?: string;
  /** How often the table is read (default LIVE_SHARE_READ_MS). */
  readEveryMs?: number;
  /** Arrival-time clock of the local view and of the cache's pruning (default Date.now). */
  now?: () => number;
}

/**
 * The process's live view with what other herd processes published: per host the newer of the local summary and
 * the shared one (by arrival time). Series and guests are the local view's only. Read synchronously from a cache
 * that a timer refreshes every `readEveryMs` with the rows published since the last read.
 */
export class SharedLiveView {
  private readonly shared = new Map<string, SharedHostSummary>();
  private since: number | undefined;
  private reading: Promise<void> = Promise.resolve();
  private readonly repeat: Loop;

  constructor(private readonly o: SharedLiveViewOptions) {
    this.repeat = new Loop(o.readEveryMs ?? LIVE_SHARE_READ_MS, () => this.refresh());
  }

  start(): void {
    this.repeat.start(throttledWarning(this.o.log, 'could not read the shared live view'));
  }

  /** Stops the timer, waiting for a read under way. Safe to call twice. */
  stop(): Promise<void> {
    return this.repeat.stop();
  }

  /** Reads what was published since the last read; concurrent calls each wait for a read that began after them. */
  refresh(): Promise<void> {
    const read = this.reading.catch(() => undefined).then(() => this.read());
    this.reading = read;
    return read;
  }

  private async read(): Promise<void> {
    const { rows, now } = await readLiveSummaries(this.o.db, {
      since: this.since === undefined ? undefined : this.since - READ_MARGIN_MS,
      exceptPublisher: this.o.self,
    });
    for (const row of rows) {
      const known = this.shared.get(row.hostname);
      if (!known || known.summary.lastSeen <= row.summary.lastSeen) this.shared.set(row.hostname, row);
    }
    // With no row there is no database time to go on: the next read starts where this one did.
    if (now !== undefined) this.since = now;
    const cutoff = (this.o.now ?? Date.now)() - KEEP_MS;
    for (const [name, row] of this.shared) if (row.summary.lastSeen < cutoff) this.shared.delete(name);
  }

  /** The host's summary as another process published it (with who and when), if any. */
  sharedSummary(hostname: string): SharedHostSummary | undefined {
    return this.shared.get(hostname);
  }

  hostSummary(hostname: string): HostLiveSummary | undefined {
    const local = this.o.local?.hostSummary(hostname);
    const shared = this.shared.get(hostname)?.summary;
    if (!shared) return local;
    if (!local) return shared;
    return shared.lastSeen > local.lastSeen ? shared : local;
  }

  lastSeen(hostname: string): number | undefined {
    return this.hostSummary(hostname)?.lastSeen;
  }

  hostNames(): string[] {
    const names = new Set(this.o.local?.hostNames());
    for (const name of this.shared.keys()) names.add(name);
    return [...names];
  }

  guestSummary(uuid: string): GuestLiveSummary | undefined {
    return this.o.local?.guestSummary(uuid);
  }

  /** This process's hosts and guests with new values (other processes' arrive with the periodic push). */
  takeChanged(): string[] {
    return this.o.local?.takeChanged?.() ?? [];
  }

  series(host: string): LiveSeries[] {
    return this.o.local?.series(host) ?? [];
  }

  /** One series' latest sample, from the local view (LiveView.get). */
  get(...args: Parameters<LiveView['get']>): LiveSeries | undefined {
    return this.o.local?.get(...args);
  }
}
