import type { Logger } from '../../../lib/log.js';
import type { Database } from '../../../schema/db.js';
import { ancestorChain } from '../../quota/quota.repository.js';
import type { Clock } from '../alert-rule.js';
import {
  activeSilences,
  type ChannelRow,
  channelsByIds,
  claimDue,
  finishAttempt,
  type NotificationRow,
  setPayload,
} from '../alerts.repository.js';
import { silences } from '../silence-match.js';
import type { AlertEntry } from './enqueue.js';
import { buildPayload, collapse, type NotificationPayload } from './payload.js';
import { DeliveryError, type Sender } from './sender.js';

export interface RetryPolicy {
  /** Wait after the first failed attempt; doubled after each further one, up to maxMs. */
  baseMs: number;
  maxMs: number;
  /** Attempts in all before a notification is given up as failed. */
  maxAttempts: number;
}

export const DEFAULT_RETRY: RetryPolicy = { baseMs: 5_000, maxMs: 10 * 60_000, maxAttempts: 8 };
/** How long a process may take to deliver a claimed notification before another one may take it over. */
const LEASE_MS = 60_000;
const BATCH = 20;

export interface DispatchResult {
  delivered: number;
  retrying: number;
  failed: number;
  silenced: number;
}

/**
 * Sends due notifications: claims them (SKIP LOCKED, so several processes share the work and never send the
 * same one together), drops silenced alerts, fixes the payload on the first attempt (every retry sends the same
 * bytes), and records each attempt in the notification's history.
 */
export class NotificationDispatcher {
  constructor(
    private readonly deps: {
      db: Database;
      log: Logger;
      clock: Clock;
      senders: Record<ChannelRow['type'], Sender>;
      retry?: RetryPolicy;
    },
  ) {}

  async dispatchDue(): Promise<DispatchResult> {
    const { db, clock } = this.deps;
    const result: DispatchResult = { delivered: 0, retrying: 0, failed: 0, silenced: 0 };
    for (;;) {
      const now = clock();
      const claimed = await claimDue(db, new Date(now), new Date(now + LEASE_MS), BATCH);
      if (!claimed.length) return result;
      const channels = new Map(
        (await channelsByIds(db, [...new Set(claimed.map((n) => n.channel_id))])).map((c) => [c.id, c]),
      );
      const outcomes = await Promise.all(claimed.map((n) => this.deliver(n, channels.get(n.channel_id))));
      for (const o of outcomes) result[o]++;
      if (claimed.length < BATCH) return result;
    }
  }

  private async deliver(n: NotificationRow, channel: ChannelRow | undefined): Promise<keyof DispatchResult> {
    const { db, log, clock } = this.deps;
    const retry = this.deps.retry ?? DEFAULT_RETRY;
    const started = clock();
    const at = new Date(started).toISOString();
    if (!channel) {
      await finishAttempt(
        db,
        n.id,
        n.attempts,
        { status: 'failed', last_error: 'channel deleted' },
        { at, error: 'channel deleted' },
      );
      return 'failed';
    }
    let payload = n.payload as unknown as NotificationPayload | null;
    if (!payload) {
      const alerts = await this.unsilenced(n, new Date(started));
      if (!alerts.length) {
        await finishAttempt(
          db,
          n.id,
          n.attempts,
          { status: 'silenced' },
          { at, outcome: 'silenced', alerts: (n.alerts as unknown[]).length },
        );
        return 'silenced';
      }
      payload = (await setPayload(
        db,
        n.id,
        buildPayload(n, channel, alerts),
      )) as unknown as NotificationPayload;
    }
    try {
      const sent = await this.deps.senders[channel.type].send(channel, payload, { attempt: n.attempts });
      await finishAttempt(
        db,
        n.id,
        n.attempts,
        { status: 'delivered', delivered_at: new Date(clock()), last_error: null, locked_until: null },
        { at, outcome: 'delivered', ...sent },
      );
      log.info(
        { notification: n.id, channel: channel.id, alerts: payload.alerts.length },
        'notification delivered',
      );
      return 'delivered';
    } catch (err) {
      const e = err instanceof DeliveryError ? err : new DeliveryError((err as Error).message, true);
      const giveUp = !e.retryable || n.attempts >= retry.maxAttempts;
      const delay = Math.min(retry.baseMs * 2 ** (n.attempts - 1), retry.maxMs);
      await finishAttempt(
        db,
        n.id,
        n.attempts,
        {
          status: giveUp ? 'failed' : 'retrying',
          last_error: e.message,
          not_before: new Date(clock() + (giveUp ? 0 : delay)),
          locked_until: null,
        },
        { at, outcome: 'error', error: e.message, status: e.status },
      );
      log.warn(
        { notification: n.id, channel: channel.id, attempt: n.attempts, err: e.message, giveUp },
        'notification delivery failed',
      );
      return giveUp ? 'failed' : 'retrying';
    }
  }

  /** The group's alerts that no active silence holds, as they stand now. */
  private async unsilenced(n: NotificationRow, now: Date): Promise<AlertEntry[]> {
    const alerts = collapse(n.alerts as AlertEntry[]);
    const active = await activeSilences(this.deps.db, now);
    if (!active.length) return alerts;
    const chain = n.pool_id === null ? [] : (await ancestorChain(this.deps.db, n.pool_id)).map((p) => p.id);
    return alerts.filter((a) => !active.some((s) => silences(s, a.labels, chain)));
  }
}
