import type { Database } from '../../schema/db.js';
import type { AlertSeverity, AlertState } from '../../schema/index.js';
import { visiblePoolIds } from '../access/access.service.js';
import type { AuthUser } from '../auth/auth-user.js';
import { notFound } from '../http/errors.js';
import { ancestorChain } from '../quota/quota.repository.js';
import { type AlertView, toAlertView } from './alert-view.js';
import {
  activeSilences,
  instanceById,
  listInstances,
  listNotifications,
  type NotificationFilter,
  type NotificationRow,
  type SilenceRow,
} from './alerts.repository.js';
import { silences } from './silence-match.js';

export interface AlertQuery {
  state?: AlertState[];
  active?: boolean;
  ruleId?: number;
  poolId?: number;
  hostId?: number;
  severity?: AlertSeverity;
  since?: string;
}

/** Current and recent alerts of the pools the caller may view, newest change first, each marked if silenced. */
export async function listAlerts(
  db: Database,
  user: AuthUser,
  q: AlertQuery,
  page: { limit: number; offset: number },
) {
  const states = q.state?.length
    ? q.state
    : q.active
      ? (['pending', 'firing', 'nodata', 'error'] as AlertState[])
      : undefined;
  const { items, total } = await listInstances(
    db,
    {
      pools: await visiblePoolIds(db, user),
      states,
      ruleId: q.ruleId,
      poolId: q.poolId,
      hostId: q.hostId,
      severity: q.severity,
      since: q.since ? new Date(q.since) : undefined,
    },
    page,
  );
  const silencedBy = await silenceCheck(db);
  const views = items.map((row) => toAlertView(row, row));
  return {
    items: await Promise.all(views.map(async (a) => ({ ...a, silenced: await silencedBy(a) }))),
    total,
  };
}

export async function getAlert(db: Database, user: AuthUser, id: number) {
  const row = await instanceById(db, id);
  const visible = await visiblePoolIds(db, user);
  if (!row || (visible !== 'all' && (row.pool_id === null || !visible.includes(row.pool_id))))
    throw notFound('alert');
  const alert = toAlertView(row, row);
  const { items } = await listNotifications(db, { pools: 'all', alertId: id }, { limit: 50, offset: 0 });
  return {
    ...alert,
    silenced: await (await silenceCheck(db))(alert),
    notifications: items.map(toNotificationView),
  };
}

/** Delivery history: the notifications of the pools the caller may view, newest first. */
export async function listDeliveries(
  db: Database,
  user: AuthUser,
  filter: Omit<NotificationFilter, 'pools'>,
  page: { limit: number; offset: number },
) {
  const { items, total } = await listNotifications(
    db,
    { ...filter, pools: await visiblePoolIds(db, user) },
    page,
  );
  return { items: items.map(toNotificationView), total };
}

export function toNotificationView(n: NotificationRow) {
  return {
    id: n.id,
    channelId: n.channel_id,
    ruleId: n.rule_id,
    poolId: n.pool_id,
    groupKey: n.group_key,
    status: n.status,
    alerts: n.alerts as Array<Record<string, unknown>>,
    attempts: n.attempts,
    lastError: n.last_error,
    createdAt: n.created_at.toISOString(),
    notBefore: n.not_before.toISOString(),
    deliveredAt: n.delivered_at?.toISOString() ?? null,
    history: n.history as Array<Record<string, unknown>>,
  };
}

/** Whether an active silence holds an alert back (its labels as notifications carry them). */
async function silenceCheck(db: Database): Promise<(a: AlertView) => Promise<boolean>> {
  const active: SilenceRow[] = await activeSilences(db, new Date());
  const chains = new Map<number, number[]>();
  return async (a) => {
    if (!active.length) return false;
    let chain: number[] = [];
    if (a.poolId !== null) {
      chain = chains.get(a.poolId) ?? (await ancestorChain(db, a.poolId)).map((p) => p.id);
      chains.set(a.poolId, chain);
    }
    const labels = { alertname: a.ruleName, severity: a.severity, rule_id: String(a.ruleId), ...a.labels };
    return active.some((s) => silences(s, labels, chain));
  };
}
