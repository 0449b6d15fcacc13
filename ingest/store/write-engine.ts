import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../lib/log.js';
import type { Registry } from '../../lib/metrics.js';
import type { Point } from '../types.js';
import { backoff, untilWoken } from './retry.js';
import { type Batch, Spool } from './spool.js';
import { RateLimitedLog, type StoreStats, WriteCounters } from './store-stats.js';

/** What a store gives the engine: how its batches are sealed, spooled, read back and delivered. */
export interface WriteTarget<M, D> {
  /** Points written but not yet sealed into a batch. */
  pendingPoints(): number;
  /**
   * Seals the pending points into batch `seq` (called only when there are some); undefined when the store
   * dropped them instead.
   */
  takePending(seq: number): M | undefined;
  /** A memory batch as the spool keeps it: its body, gzipped. */
  spoolBody(batch: M): Promise<Buffer>;
  /** What delivery sends: from a memory batch, or from a spooled batch's body read back from disk. */
  fromMemory(batch: M): Promise<D> | D;
  fromSpool(body: Buffer, batch: Batch): Promise<D> | D;
  /**
   * One attempt at storing a batch of `points`. 'stored': delivered, or dropped for good (the store counted
   * it); 'retry': worth trying again later (the store counted and logged the error); 'aborted': stopped.
   */
  attempt(data: D, points: number, signal: AbortSignal): Promise<'stored' | 'retry' | 'aborted'>;
}

export const ENGINE_DEFAULTS = {
  minBackoffMs: 250,
  maxBackoffMs: 15_000,
  /** How long stop() keeps delivering before it spools the rest. */
  stopTimeoutMs: 5_000,
};

/** What a store's options give the engine. */
export interface WriterOptions extends Partial<typeof ENGINE_DEFAULTS> {
  /** Points per batch: a store seals one when it holds this many. */
  batchSize: number;
  flushMs: number;
  /**
   * Points kept in memory while the database is down or slow; beyond that the oldest batches go to the disk
   * spool, or without one are dropped and counted.
   */
  memoryPoints: number;
  spillMaxBytes: number;
  /** Unset in a process that only reads (no ingest role): nothing is spooled, what stop() cannot deliver is dropped. */
  spoolDir?: string;
  log: Logger;
  registry?: Registry;
}

export interface WriteEngineOptions extends WriterOptions {
  store: 'influx' | 'postgres';
  /** The database, as log lines name it: `InfluxDB`, `PostgreSQL`. */
  system: string;
  /** What the points are called in log lines about the spool and stopping. */
  what: string;
}

/** While writes fail, partial batches are sealed (and so spooled) at least this often. */
const FAILING_SEAL_MS = 20;

/** A sealed batch: delivery order, points, and the store's own form of it. */
interface Sealed<M> {
  seq: number;
  points: number;
  batch: M;
}

/**
 * The write path both metrics stores share. Points a store encodes are sealed into batches by size or after
 * flushMs and delivered one at a time in order by a single loop that retries with exponential backoff and
 * jitter. Beyond `memoryPoints` the oldest batches move to the disk spool (and while writes fail, every batch
 * the spool can take, so an outage's points survive even a SIGKILL); delivery always takes the oldest batch
 * first (the one in flight, then the spool, then memory), so points arrive in the order they were written,
 * across outages and restarts. stop() delivers what it can within a short deadline and spools the rest.
 */
export class WriteEngine<M, D> {
  readonly counters: WriteCounters;
  readonly warnings: RateLimitedLog;
  private readonly o: WriteEngineOptions & typeof ENGINE_DEFAULTS;
  private readonly spool?: Spool;
  private pendingTimer?: NodeJS.Timeout;
  private memory: Sealed<M>[] = [];
  private memoryPoints = 0;
  /** The memory batch being delivered (taken out of `memory` while the spool was empty). */
  private taken?: Sealed<M>;
  private seq = 0;
  private loadedSeq = Number.MIN_SAFE_INTEGER;
  private waiters: Array<{ seq: number; resolve: () => void }> = [];
  private starting?: Promise<void>;
  private stopping?: Promise<void>;
  private loop?: Promise<void>;
  private abort?: AbortController;
  private wake?: () => void;
  private isFailing = false;

  constructor(
    options: WriteEngineOptions,
    private readonly target: WriteTarget<M, D>,
  ) {
    this.o = { ...ENGINE_DEFAULTS, ...withoutUndefined(options) } as WriteEngineOptions &
      typeof ENGINE_DEFAULTS;
    this.warnings = new RateLimitedLog(this.o.log);
    this.counters = new WriteCounters(
      this.o.store,
      () => ({
        bufferedPoints: this.buffered(),
        spilledPoints: this.spool?.points ?? 0,
        spilledBytes: this.spool?.bytes ?? 0,
      }),
      this.o.registry,
    );
    if (this.o.spoolDir)
      this.spool = new Spool(this.o.spoolDir, this.o.spillMaxBytes, this.o.memoryPoints, {
        dropped: (batch, reason) => {
          this.counters.drop('spool', batch.count);
          this.warnings.warn(
            'spool',
            { reason, dir: this.o.spoolDir },
            `points dropped: ${this.o.system} unreachable and the spool cannot take them`,
            batch.count,
          );
          this.settle();
        },
        drained: () => this.spillOverflow(),
      });
  }

  /** Whether the last write attempt failed (and no later one succeeded). */
  get failing(): boolean {
    return this.isFailing;
  }

  /** Marks writes failing; answers whether they were not already. */
  markFailing(): boolean {
    const was = this.isFailing;
    this.isFailing = true;
    return !was;
  }

  /** Marks writes succeeding; answers whether they were failing until now. */
  markRecovered(): boolean {
    const was = this.isFailing;
    this.isFailing = false;
    return was;
  }

  /** Whether the disk spool is open (points beyond memory then wait there instead of being dropped). */
  get spooling(): boolean {
    return this.spool?.opened ?? false;
  }

  get spilledPoints(): number {
    return this.spool?.points ?? 0;
  }

  get spilledBytes(): number {
    return this.spool?.bytes ?? 0;
  }

  /** Points in memory: pending, sealed, and in flight. */
  buffered(): number {
    return this.target.pendingPoints() + this.memoryPoints + (this.taken?.points ?? 0);
  }

  /** Points sealed and in flight, not counting pending ones. */
  get sealedPoints(): number {
    return this.memoryPoints;
  }

  /** After a write: seals the pending points after flushMs (sooner while writes fail) unless a timer runs. */
  scheduleSeal(): void {
    if (this.target.pendingPoints() > 0 && !this.pendingTimer) {
      const sealMs = this.isFailing ? Math.min(this.o.flushMs, FAILING_SEAL_MS) : this.o.flushMs;
      this.pendingTimer = setTimeout(() => this.seal(), sealMs);
      this.pendingTimer.unref();
    }
  }

  seal(): void {
    if (this.pendingTimer) {
      clearTimeout(this.pendingTimer);
      this.pendingTimer = undefined;
    }
    const points = this.target.pendingPoints();
    if (points === 0) return;
    const seq = ++this.seq;
    const batch = this.target.takePending(seq);
    if (batch === undefined) return;
    this.memory.push({ seq, points, batch });
    this.memoryPoints += points;
    this.spillOverflow();
    this.wake?.();
  }

  /** Resolves once every point written before the call has been stored or dropped. */
  async flush(): Promise<void> {
    this.seal();
    const target = this.seq;
    if (this.oldestPending() > target) return;
    await new Promise<void>((resolve) => this.waiters.push({ seq: target, resolve }));
  }

  start(): Promise<void> {
    if (this.stopping) return this.stopping.then(() => this.start());
    this.starting ??= (async () => {
      if (this.spool) {
        await this.spool.open(() => this.loadedSeq++);
        if (this.spool.points > 0)
          this.o.log.info(
            { points: this.spool.points, bytes: this.spool.bytes },
            `delivering ${this.o.what} spooled by an earlier run`,
          );
      }
      this.spillOverflow();
      this.abort = new AbortController();
      this.loop = this.run(this.abort.signal);
    })().catch((err) => {
      this.starting = undefined;
      throw err;
    });
    return this.starting;
  }

  get started(): boolean {
    return this.starting !== undefined;
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

  /** A point that cannot be stored: counted (`invalid`) and logged, rate-limited. */
  refuse(point: Point, reason: string): void {
    this.counters.drop('invalid', 1);
    this.warnings.warn(
      `invalid:${reason}`,
      { reason, measurement: typeof point?.measurement === 'string' ? point.measurement : undefined },
      'point dropped: it cannot be stored',
      1,
    );
  }

  /**
   * Moves the oldest memory batches to the spool while memory holds more than its bound, and while writes fail
   * every one the spool can take at once (the rest as it drains): points of an outage then survive even a
   * SIGKILL.
   */
  private spillOverflow(): void {
    if (!this.spool?.opened || this.stopping) return;
    while (this.memory.length > 0) {
      const over = this.memoryPoints > this.o.memoryPoints;
      if (!over && !(this.isFailing && this.spool.canTake(this.memory[0].points))) break;
      const sealed = this.memory.shift()!;
      this.memoryPoints -= sealed.points;
      this.spool.append(this.toSpool(sealed));
    }
  }

  private toSpool(sealed: Sealed<M>): Batch {
    return { seq: sealed.seq, count: sealed.points, body: this.target.spoolBody(sealed.batch) };
  }

  private oldestPending(): number {
    return Math.min(
      this.taken?.seq ?? Infinity,
      this.spool?.head?.seq ?? Infinity,
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
      const next = await this.next(signal);
      if (!next) return;
      const outcome = await this.deliver(next, signal);
      if (outcome === 'aborted') return;
      if (outcome === 'requeued') continue;
      if (next === this.taken) this.taken = undefined;
      else this.spool!.ack(next as Batch);
      this.settle();
    }
  }

  /** The oldest batch: the spool's head (once on disk), else memory's; waits when there is none. */
  private async next(signal: AbortSignal): Promise<Sealed<M> | Batch | undefined> {
    while (!signal.aborted) {
      const head = this.spool?.head;
      if (head) {
        if (await head.written) return head;
        continue;
      }
      const sealed = this.memory.shift();
      if (sealed) {
        this.memoryPoints -= sealed.points;
        this.taken = sealed;
        return sealed;
      }
      await untilWoken(signal, (wake) => {
        this.wake = wake;
      });
    }
    return undefined;
  }

  /** 'requeued': the batch went to the spool (an outage began while it was in flight); deliver it from there. */
  private async deliver(
    next: Sealed<M> | Batch,
    signal: AbortSignal,
  ): Promise<'done' | 'aborted' | 'requeued'> {
    const fromMemory = next === this.taken;
    const points = fromMemory ? (next as Sealed<M>).points : (next as Batch).count;
    let data: D;
    try {
      data = fromMemory
        ? await this.target.fromMemory((next as Sealed<M>).batch)
        : await this.target.fromSpool(await this.spool!.read(next as Batch), next as Batch);
    } catch (err) {
      this.counters.drop('spool', points);
      this.warnings.warn(
        'unreadable',
        { err: (err as Error).message },
        'points dropped: a batch could not be read',
        points,
      );
      return 'done';
    }
    for (let attempt = 0; ; attempt++) {
      if (signal.aborted) return 'aborted';
      if (attempt > 0 && this.requeue(next)) return 'requeued';
      if (attempt > 0 && !(await backoff(attempt, this.o.minBackoffMs, this.o.maxBackoffMs, signal)))
        return 'aborted';
      const outcome = await this.target.attempt(data, points, signal);
      if (outcome === 'retry') continue;
      return outcome === 'aborted' ? 'aborted' : 'done';
    }
  }

  /**
   * A memory batch whose write failed goes to the spool, ahead of memory, so that what an outage holds back is
   * all on disk. Only while the spool is empty (the batch is then older than everything in it); right after the
   * failure, before anything else could be spilled.
   */
  private requeue(next: Sealed<M> | Batch): boolean {
    if (next !== this.taken || !this.spool?.opened || this.spool.head || this.stopping) return false;
    this.taken = undefined;
    this.spool.append(this.toSpool(next));
    this.spillOverflow();
    return true;
  }

  private async shutdown(): Promise<void> {
    await this.starting?.catch(() => undefined);
    this.seal();
    if (!this.isFailing) {
      const deadline = sleep(this.o.stopTimeoutMs, undefined, { ref: false });
      await Promise.race([this.flush(), deadline]);
    }
    this.abort?.abort();
    await this.loop;
    this.wake = undefined;
    // What is left waits on disk for the next start: the batch that was in flight first (it is older
    // than anything spilled while it was being sent), then memory, oldest first. A spooled batch in flight
    // stays the spool's head.
    const left = (this.taken?.points ?? 0) + this.memoryPoints;
    if (this.spool?.opened) {
      const persisting: Promise<unknown>[] = [];
      if (this.taken) persisting.push(this.spool.writeHead(this.toSpool(this.taken)));
      for (const sealed of this.memory) this.spool.append(this.toSpool(sealed), { unbounded: true });
      await Promise.all(persisting);
      await this.spool.close();
      if (left > 0)
        this.o.log.info(
          { points: left, dir: this.o.spoolDir },
          `undelivered ${this.o.what} kept in the spool`,
        );
    } else if (left > 0) {
      this.counters.drop('stopped', left);
      this.o.log.warn(
        { points: left },
        `points dropped: ${this.o.system} did not take them before herd stopped`,
      );
    }
    this.taken = undefined;
    this.memory = [];
    this.memoryPoints = 0;
    for (const w of this.waiters) w.resolve();
    this.waiters = [];
  }
}

export function withoutUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
