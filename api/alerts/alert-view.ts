import type { AlertSeverity, AlertState } from '../../schema/index.js';
import type { InstanceState } from './alert-state.js';
import type { InstanceRow } from './alerts.repository.js';

/** An alert instance as the API, the dashboard feed and notifications show it. */
export interface AlertView {
  id: number;
  ruleId: number;
  ruleName: string;
  builtin: string | null;
  severity: AlertSeverity;
  subject: string;
  poolId: number | null;
  hostId: number | null;
  labels: Record<string, string>;
  state: AlertState;
  /** The last value seen (null: none, or not a finite number). */
  value: number | null;
  error: string | null;
  activeSince: string | null;
  firingSince: string | null;
  resolvedAt: string | null;
  lastNotifiedAt: string | null;
  lastEvaluatedAt: string | null;
  stateChangedAt: string;
}

export function toAlertView(
  row: InstanceRow,
  rule: { rule_name: string; builtin: string | null; severity: AlertSeverity },
): AlertView {
  return {
    id: row.id,
    ruleId: row.rule_id,
    ruleName: rule.rule_name,
    builtin: rule.builtin,
    severity: rule.severity,
    subject: row.subject,
    poolId: row.pool_id,
    hostId: row.host_id,
    labels: row.labels,
    state: row.state,
    value: row.value !== null && Number.isFinite(row.value) ? row.value : null,
    error: row.error,
    activeSince: iso(row.active_since),
    firingSince: iso(row.firing_since),
    resolvedAt: iso(row.resolved_at),
    lastNotifiedAt: iso(row.last_notified_at),
    lastEvaluatedAt: iso(row.last_evaluated_at),
    stateChangedAt: row.state_changed_at.toISOString(),
  };
}

export function stateOfRow(row: InstanceRow): InstanceState {
  return {
    state: row.state,
    activeSince: ms(row.active_since),
    firingSince: ms(row.firing_since),
    lastBreachAt: ms(row.last_breach_at),
    resolvedAt: ms(row.resolved_at),
    lastNotifiedAt: ms(row.last_notified_at),
  };
}

/** The instance columns a state machine step writes. */
export function stateColumns(s: InstanceState) {
  return {
    state: s.state,
    active_since: date(s.activeSince),
    firing_since: date(s.firingSince),
    last_breach_at: date(s.lastBreachAt),
    resolved_at: date(s.resolvedAt),
    last_notified_at: date(s.lastNotifiedAt),
  };
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);
const ms = (d: Date | null) => (d ? d.getTime() : null);
const date = (t: number | null) => (t === null ? null : new Date(t));
