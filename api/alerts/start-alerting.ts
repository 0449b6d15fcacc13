import type pg from 'pg';
import type { Logger } from '../../lib/log.js';
import { Loop } from '../../lib/loop.js';
import { OutboundGuard } from '../../lib/outbound-guard.js';
import type { Database } from '../../schema/db.js';
import { countEventsByHost, pruneEvents } from '../events/events.repository.js';
import type { ForecastSource } from '../forecast/forecast-source.js';
import { AlertEvaluator, type EvaluationResult } from './alert-evaluator.js';
import { AlertFeed } from './alert-feed.js';
import type { Clock } from './alert-rule.js';
import { pruneHistory } from './alerts.repository.js';
import { ensureBuiltinRules } from './builtin-rules.js';
import { type LiveSource, MetricReader, type StoreSource } from './metric-reader.js';
import { type DispatchResult, NotificationDispatcher, type RetryPolicy } from './notify/dispatcher.js';
import { emailSender, type SmtpDefaults } from './notify/email-sender.js';
import type { Sender } from './notify/sender.js';
import { createWebhookSender } from './notify/webhook-sender.js';

const DAY_MS = 86_400_000;
const DEFAULT_HISTORY_DAYS = 30;
const PRUNE_EVERY_MS = 3_600_000;

export interface AlertingOptions {
  db: Database;
  log: Logger;
  /** The process's live view (ingest): live metrics and collectd silence. Without it, live rules read no data. */
  liveView?: LiveSource;
  /** The metrics store, for `store` rules. */
  store?: StoreSource;
  /** Capacity forecasts, for `forecast` rules (api/forecast/forecast-source.ts). */
  forecast?: ForecastSource;
  /** Defaults to Date.now; tests inject their own. */
  clock?: Clock;
  /** Default 10 s. */
  evaluateEveryMs?: number;
  /** How often due notifications are looked for, default 2 s (also right after an evaluation queued some). */
  dispatchEveryMs?: number;
  /** SMTP server for e-mail channels that name none. */
  smtp?: SmtpDefaults;
  retry?: RetryPolicy;
  /** The pg pool of the database: the feed then also carries alert changes made by other herd processes. */
  pgPool?: pg.Pool;
  /** Delivery history, resolved alerts and collectd notifications (events) are kept this many days (default 30). */
  historyDays?: number;
  /** false: no timers, the caller runs `evaluate()` and `dispatch()` (tests). Default true. */
  autoRun?: boolean;
  /** Addresses or CIDRs webhooks and channels' SMTP servers may reach although refused by default
   * (HERD_WEBHOOK_ALLOW; lib/outbound-guard.ts). */
  webhookAllow?: readonly string[];
  /** Replaces a channel type's sender. */
  senders?: Partial<Record<'webhook' | 'email', Sender>>;
}

export interface Alerting {
  /** Alert changes for the dashboard: `feed.on('alert', (e: AlertEvent) => …)`, `feed.on('enforcement', …)`. */
  feed: AlertFeed;
  /** One evaluation round of every enabled rule. */
  evaluate(): Promise<EvaluationResult>;
  /** Sends the notifications that are due. */
  dispatch(): Promise<DispatchResult>;
  /** Stops the timers and waits for a round in progress. Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Starts alerting: seeds the built-in rules, then evaluates every rule each `evaluateEveryMs` and delivers due
 * notifications. Any number of herd processes may run it on one database (see AlertEvaluator and
 * NotificationDispatcher for why nothing is sent twice).
 */
export async function startAlerting(o: AlertingOptions): Promise<Alerting> {
  const clock = o.clock ?? Date.now;
  const log = o.log.child({ part: 'alerting' });
  await ensureBuiltinRules(o.db);
  const feed = new AlertFeed();
  const reader = new MetricReader(
    {
      liveView: o.liveView,
      store: o.store,
      events: (hostIds, match, from, to) => countEventsByHost(o.db, hostIds, match, from, to),
      forecast: o.forecast,
    },
    clock,
  );
  const evaluator = new AlertEvaluator({ db: o.db, log, reader, clock, feed });
  const guard = new OutboundGuard(o.webhookAllow);
  const dispatcher = new NotificationDispatcher({
    db: o.db,
    log,
    clock,
    retry: o.retry,
    senders: {
      webhook: createWebhookSender(guard),
      email: emailSender(o.smtp, guard),
      ...o.senders,
    },
  });
  const stopListening = o.pgPool ? await feed.listen(o.pgPool, log) : undefined;

  const loops = [
    new Loop(o.evaluateEveryMs ?? 10_000, async () => {
      const r = await evaluator.evaluateAll();
      if (r.notifications > 0) loops[1].kick();
    }),
    new Loop(o.dispatchEveryMs ?? 2_000, () => dispatcher.dispatchDue()),
    new Loop(PRUNE_EVERY_MS, async () => {
      const before = new Date(clock() - (o.historyDays ?? DEFAULT_HISTORY_DAYS) * DAY_MS);
      await pruneHistory(o.db, before);
      await pruneEvents(o.db, before);
    }),
  ];
  const onError = (err: unknown) => log.warn({ err }, 'alerting round failed');
  if (o.autoRun ?? true) for (const loop of loops) loop.start(onError);

  let stopped = false;
  return {
    feed,
    evaluate: () => evaluator.evaluateAll(),
    dispatch: () => dispatcher.dispatchDue(),
    async stop() {
      if (stopped) return;
      stopped = true;
      await Promise.all(loops.map((l) => l.stop()));
      await stopListening?.();
    },
  };
}
