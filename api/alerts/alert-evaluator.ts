import type { Logger } from '../../lib/log.js';
import type { Database } from '../../schema/db.js';
import type { AlertEvent, AlertFeed, AlertTransition } from './alert-feed.js';
import { type AlertRule, type Clock, toRule } from './alert-rule.js';
import { INITIAL_STATE, type InstanceState, type NotifyKind, type Observation, step } from './alert-state.js';
import { stateColumns, stateOfRow, toAlertView } from './alert-view.js';
import {
  enabledRules,
  type InstanceRow,
  insertInstance,
  instancesOfRule,
  tryLockRule,
  updateInstance,
} from './alerts.repository.js';
import { type MetricReader, Round, type Subject } from './metric-reader.js';
import { type AlertEntry, enqueueNotification } from './notify/enqueue.js';

export interface EvaluationResult {
  rules: number;
  /** Rules another process was evaluating at the same moment (left to it). */
  skipped: number;
  transitions: number;
  notifications: number;
}

/**
 * Evaluates every enabled rule and moves its instances through the state machine (alert-state.ts).
 *
 * Exactly-once across processes: each rule is evaluated in one transaction holding a transaction-scoped
 * advisory lock on the rule (a process finding it taken skips the rule this round); each instance write is
 * conditional on the version it read; and the notification rows a transition causes are written in that same
 * transaction. So a transition — and the notification it causes — is committed by one process only.
 */
export class AlertEvaluator {
  constructor(
    private readonly deps: { db: Database; log: Logger; reader: MetricReader; clock: Clock; feed: AlertFeed },
  ) {}

  async evaluateAll(): Promise<EvaluationResult> {
    const { db, log, reader, clock } = this.deps;
    const round = new Round(db, clock());
    const result: EvaluationResult = { rules: 0, skipped: 0, transitions: 0, notifications: 0 };
    for (const row of await enabledRules(db)) {
      const rule = toRule(row);
      // Live figures exist only where collectd traffic arrives: a process without them leaves these rules to
      // one that has them, rather than reporting every host as silent.
      if (!reader.hasLiveView && (rule.metric.source === 'live' || rule.metric.source === 'host')) continue;
      try {
        const r = await this.evaluateRule(rule, round);
        if (r === null) result.skipped++;
        else {
          result.rules++;
          result.transitions += r.transitions;
          result.notifications += r.notifications;
        }
      } catch (err) {
        log.warn({ err, rule: rule.id }, 'alert rule evaluation failed');
      }
    }
    reader.endRound();
    return result;
  }

  /** null when another process holds the rule. */
  private async evaluateRule(
    rule: AlertRule,
    round: Round,
  ): Promise<{ transitions: number; notifications: number } | null> {
    const observed = await this.deps.reader.observe(rule, round);
    const now = round.now;
    const events: AlertEvent[] = [];
    let notifications = 0;
    const skipped = await this.deps.db.transaction().execute(async (trx) => {
      if (!(await tryLockRule(trx, rule.id))) return true;
      const existing = new Map((await instancesOfRule(trx, rule.id)).map((r) => [r.subject, r]));
      const toNotify: Array<{ row: InstanceRow; kind: NotifyKind }> = [];
      const apply = async (subject: Subject, obs: Observation, row: InstanceRow | undefined) => {
        const prev = row ? stateOfRow(row) : INITIAL_STATE;
        const { next, notify } = step(prev, obs, rule, now);
        const written = await this.write(trx, rule, subject, obs, row, next, now);
        if (!written) return;
        if (notify) toNotify.push({ row: written, kind: notify });
        const transition = transitionOf(prev, next, notify);
        if (transition) {
          events.push({
            transition,
            alert: toAlertView(written, {
              rule_name: rule.name,
              builtin: rule.builtin,
              severity: rule.severity,
            }),
          });
        }
      };
      for (const { subject, obs } of observed) {
        await apply(subject, obs, existing.get(subject.key));
        existing.delete(subject.key);
      }
      // Subjects gone (host removed or disabled, quota deleted): what fired is resolved, the rest forgotten.
      for (const row of existing.values()) {
        if (row.state === 'ok') continue;
        const gone: Subject = {
          key: row.subject,
          poolId: row.pool_id,
          hostId: row.host_id,
          labels: row.labels,
        };
        await apply(gone, { kind: 'value', value: Number.NaN }, row);
      }
      notifications = await this.enqueue(trx, rule, toNotify, round);
      if (events.length) await this.deps.feed.notifyOthers(trx, 'alert', events);
      return false;
    });
    if (skipped) return null;
    this.deps.feed.publish('alert', events);
    return { transitions: events.length, notifications };
  }

  /** Writes the instance (created only once it leaves ok); undefined when another process wrote it first. */
  private async write(
    trx: Database,
    rule: AlertRule,
    subject: Subject,
    obs: Observation,
    row: InstanceRow | undefined,
    next: InstanceState,
    now: number,
  ): Promise<InstanceRow | undefined> {
    const at = new Date(now);
    const values = {
      ...stateColumns(next),
      pool_id: subject.poolId,
      host_id: subject.hostId,
      labels: JSON.stringify(subject.labels),
      value: obs.kind === 'value' && !Number.isNaN(obs.value) ? obs.value : null,
      error: obs.kind === 'error' ? obs.message : null,
      last_evaluated_at: at,
    };
    if (!row) {
      if (next.state === 'ok') return undefined;
      return insertInstance(trx, { ...values, rule_id: rule.id, subject: subject.key, state_changed_at: at });
    }
    return updateInstance(trx, row.id, row.version, {
      ...values,
      state_changed_at: next.state !== row.state ? at : row.state_changed_at,
    });
  }

  /** Alerts that changed together go out together: one notification per channel for the rule and pool. */
  private async enqueue(
    trx: Database,
    rule: AlertRule,
    changes: Array<{ row: InstanceRow; kind: NotifyKind }>,
    round: Round,
  ): Promise<number> {
    const byPool = new Map<number | null, AlertEntry[]>();
    for (const { row, kind } of changes) {
      const entries = byPool.get(row.pool_id) ?? [];
      entries.push(entryOf(rule, row, kind, round.now));
      byPool.set(row.pool_id, entries);
    }
    let reached = 0;
    for (const [poolId, entries] of byPool) {
      reached += await enqueueNotification(trx, {
        ruleId: rule.id,
        poolChain: poolId === null ? [] : await round.chain(poolId),
        channelIds: rule.channelIds,
        severity: rule.severity,
        groupKey: `rule:${rule.id}|pool:${poolId ?? '-'}`,
        entries,
        now: round.now,
        groupWaitSeconds: rule.groupWaitSeconds,
      });
    }
    return reached;
  }
}

function transitionOf(
  prev: InstanceState,
  next: InstanceState,
  notify: NotifyKind | null,
): AlertTransition | null {
  if (notify === 'resolved') return 'resolved';
  if (prev.state === next.state) return null;
  return next.state;
}

function entryOf(rule: AlertRule, row: InstanceRow, kind: NotifyKind, now: number): AlertEntry {
  const labels = {
    alertname: rule.name,
    severity: rule.severity,
    rule_id: String(rule.id),
    ...rule.labels,
    ...row.labels,
  };
  return {
    instanceId: row.id,
    ruleId: rule.id,
    kind,
    status: kind === 'resolved' ? 'resolved' : 'firing',
    severity: rule.severity,
    labels,
    summary: summaryOf(rule, row, kind),
    value: row.value !== null && Number.isFinite(row.value) ? row.value : null,
    startsAt: (row.firing_since ?? row.active_since)?.toISOString() ?? null,
    endsAt: row.resolved_at?.toISOString() ?? null,
    at: new Date(now).toISOString(),
  };
}

function summaryOf(rule: AlertRule, row: InstanceRow, kind: NotifyKind): string {
  const l = row.labels;
  const what =
    l.host ??
    (l.resource && l.user
      ? `${l.user} ${l.resource} in pool ${l.pool}`
      : l.resource
        ? `${l.resource} ${l.kind ?? ''} of pool ${l.pool}`.replace('  ', ' ')
        : l.pool
          ? `pool ${l.pool}`
          : row.subject);
  const metric = rule.metric.field ?? rule.metric.measurement ?? rule.metric.type ?? 'value';
  const value =
    row.value === null ? 'no data' : Number.isFinite(row.value) ? String(round3(row.value)) : 'unbounded';
  const condition = rule.condition === 'absent' ? 'absent' : `${rule.condition} ${rule.threshold}`;
  const prefix = kind === 'resolved' ? 'resolved: ' : '';
  return `${prefix}${rule.name} on ${what}: ${metric} = ${value} (${condition})`;
}

const round3 = (v: number) => Math.round(v * 1000) / 1000;
