import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { sql } from 'kysely';
import type pg from 'pg';
import type { Logger } from '../../lib/log.js';
import type { Database } from '../../schema/db.js';
import type { AlertView } from './alert-view.js';

/** PostgreSQL channel that carries alert changes between herd processes. */
export const ALERT_CHANNEL = 'herd_alerts';
/** NOTIFY payloads must stay under 8000 bytes; larger events are sent without labels. */
const MAX_PAYLOAD = 7900;
/** Pauses before listening again after the connection was lost: doubling from the first to the last. */
const RELISTEN_FIRST_MS = 250;
const RELISTEN_MAX_MS = 5_000;

export type AlertTransition = 'pending' | 'firing' | 'resolved' | 'ok' | 'nodata' | 'error';

export interface AlertEvent {
  transition: AlertTransition;
  alert: AlertView;
}

export interface QuotaEnforcementEvent {
  poolId: number;
  userId: number | null;
  action: string;
  reason: string;
  vmId?: number | null;
}

/** A move the balancer made or an admin applied (api/balancer), with its reason. */
export interface BalancerMoveEvent {
  poolId: number;
  vmId: number;
  vmName: string;
  fromHostId: number;
  toHostId: number;
  taskId: number;
  reason: string;
  /** true: the balancer in automatic mode; false: an admin applied a recommendation. */
  automatic: boolean;
  userId: number | null;
}

type FeedEvent = AlertEvent | QuotaEnforcementEvent | BalancerMoveEvent;

interface Wire {
  origin: string;
  kind: 'alert' | 'enforcement' | 'balancer';
  event: FeedEvent;
}

/** The origin of events sent by notifyAll: no feed's own, so every listening feed (this process's too) emits them. */
const EVERY_FEED = 'all';

/** Queues an event for every listening feed, this process's included; delivered only if `trx` commits. */
export async function notifyAll(trx: Database, kind: Wire['kind'], event: FeedEvent): Promise<void> {
  const payload = JSON.stringify({ origin: EVERY_FEED, kind, event } satisfies Wire);
  if (payload.length <= MAX_PAYLOAD) await sql`SELECT pg_notify(${ALERT_CHANNEL}, ${payload})`.execute(trx);
}

/**
 * Alert changes as events, for the dashboard: `feed.on('alert', (e: AlertEvent) => …)`,
 * `feed.on('enforcement', (e: QuotaEnforcementEvent) => …)` and `feed.on('balancer', (e: BalancerMoveEvent) => …)`. Changes made in this process are emitted once
 * their transaction committed; with `listen(pool)` changes made by other herd processes on the same database
 * are emitted too (PostgreSQL LISTEN/NOTIFY), each event once.
 */
export class AlertFeed extends EventEmitter {
  readonly origin = randomUUID();

  /** Queues the events for other processes; PostgreSQL delivers them only if `trx` commits. */
  async notifyOthers(trx: Database, kind: Wire['kind'], events: FeedEvent[]): Promise<void> {
    for (const event of events) {
      let payload = JSON.stringify({ origin: this.origin, kind, event } satisfies Wire);
      if (payload.length > MAX_PAYLOAD && kind === 'alert') {
        const e = event as AlertEvent;
        payload = JSON.stringify({
          origin: this.origin,
          kind,
          event: { ...e, alert: { ...e.alert, labels: {} } },
        });
      }
      if (payload.length > MAX_PAYLOAD) continue;
      await sql`SELECT pg_notify(${ALERT_CHANNEL}, ${payload})`.execute(trx);
    }
  }

  publish(kind: Wire['kind'], events: FeedEvent[]): void {
    for (const event of events) this.emit(kind, event);
  }

  /**
   * Re-emits what other processes publish; returns the function that stops listening. The first LISTEN must
   * succeed; once its connection is lost (PostgreSQL restarted, a failover to another host) the feed takes a new
   * connection and listens again, retrying with a growing pause (what was notified meanwhile is not seen).
   */
  async listen(pool: pg.Pool, log: Logger): Promise<() => Promise<void>> {
    let stopped = false;
    /** Lets go of the listening connection: `err` destroys it (lost), without it goes back to the pool. */
    let letGo: ((err?: Error) => Promise<void>) | undefined;
    let retry: NodeJS.Timeout | undefined;
    let pauseMs = RELISTEN_FIRST_MS;
    const onNotification = (msg: pg.Notification) => {
      if (msg.channel !== ALERT_CHANNEL || !msg.payload) return;
      try {
        const wire = JSON.parse(msg.payload) as Wire;
        if (wire.origin !== this.origin) this.emit(wire.kind, wire.event);
      } catch (err) {
        log.warn({ err }, 'unreadable alert notification');
      }
    };
    const subscribe = async () => {
      const c = await pool.connect();
      let released = false;
      const release = async (err?: Error) => {
        if (released) return;
        released = true;
        c.off('notification', onNotification);
        if (!err) await c.query(`UNLISTEN ${ALERT_CHANNEL}`).catch(() => undefined);
        c.release(err);
      };
      const onLost = (err?: Error) => {
        if (released) return;
        void release(err ?? new Error('connection ended'));
        letGo = undefined;
        if (stopped) return;
        log.warn({ err: err?.message }, 'alert feed connection lost; listening again');
        relisten();
      };
      c.on('notification', onNotification);
      c.on('error', onLost);
      c.on('end', () => onLost());
      try {
        await c.query(`LISTEN ${ALERT_CHANNEL}`);
      } catch (err) {
        await release(err as Error);
        throw err;
      }
      if (stopped) await release();
      else letGo = release;
    };
    const relisten = () => {
      if (stopped || retry) return;
      retry = setTimeout(async () => {
        retry = undefined;
        if (stopped) return;
        try {
          await subscribe();
          pauseMs = RELISTEN_FIRST_MS;
          log.info('alert feed listening again');
        } catch {
          pauseMs = Math.min(pauseMs * 2, RELISTEN_MAX_MS);
          relisten();
        }
      }, pauseMs);
    };
    await subscribe();
    return async () => {
      if (stopped) return;
      stopped = true;
      clearTimeout(retry);
      await letGo?.();
      letGo = undefined;
    };
  }
}

/**
 * A feed for a process that does not evaluate alerts (e.g. `--only api` serving the dashboard): it only listens.
 * Pass the pg pool of the database handle (`DatabaseHandle.pool`).
 */
export async function startAlertFeed(deps: {
  pool: pg.Pool;
  log: Logger;
}): Promise<{ feed: AlertFeed; stop(): Promise<void> }> {
  const feed = new AlertFeed();
  const stop = await feed.listen(deps.pool, deps.log);
  return { feed, stop };
}
