import { EventEmitter } from 'node:events';
import type { Logger } from '../lib/log.js';
import type { Database } from '../schema/db.js';
import { type Notification, SEVERITY_NAMES } from './types.js';

export interface EventSinkStats {
  stored: number;
  dropped: number;
  errors: number;
  queued: number;
}

/**
 * collectd notifications, kept as events in PostgreSQL (apart from metrics). Inserts are batched; the queue
 * is bounded and what overflows is counted. Subscribers get each notification as it arrives.
 */
export class EventSink extends EventEmitter<{ notification: [Notification] }> {
  private queue: Notification[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private readonly counts = { stored: 0, dropped: 0, errors: 0 };

  constructor(
    private readonly db: Database,
    private readonly log: Logger,
    private readonly options: { maxQueue?: number; flushMs?: number } = {},
  ) {
    super();
  }

  push(n: Notification): void {
    this.emit('notification', n);
    if (this.queue.length >= (this.options.maxQueue ?? 10_000)) {
      this.counts.dropped++;
      return;
    }
    this.queue.push(n);
  }

  start(): void {
    this.timer ??= setInterval(() => void this.flush(), this.options.flushMs ?? 1000);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  async flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    this.flushing = this.db
      .insertInto('events')
      .values(
        batch.map((n) => ({
          time: new Date(n.time * 1000),
          host: n.host,
          plugin: n.plugin,
          plugin_instance: n.pluginInstance,
          type: n.type,
          type_instance: n.typeInstance,
          severity: SEVERITY_NAMES[n.severity] ?? String(n.severity),
          message: n.message,
        })),
      )
      .execute()
      .then(
        () => {
          this.counts.stored += batch.length;
        },
        (err) => {
          this.counts.errors++;
          this.counts.dropped += batch.length;
          this.log.warn({ err, events: batch.length }, 'could not store collectd notifications');
        },
      )
      .finally(() => {
        this.flushing = undefined;
      });
    return this.flushing;
  }

  stats(): EventSinkStats {
    return { ...this.counts, queued: this.queue.length };
  }
}
