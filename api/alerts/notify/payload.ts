import type { ChannelRow, NotificationRow } from '../alerts.repository.js';
import type { AlertEntry } from './enqueue.js';

/** The JSON a webhook receives (and what an e-mail is written from), modelled on Alertmanager's webhook. */
export interface NotificationPayload {
  version: '1';
  notificationId: number;
  groupKey: string;
  /** firing while any alert of the notification is. */
  status: 'firing' | 'resolved';
  receiver: string;
  ruleId: number | null;
  poolId: number | null;
  /** Labels every alert of the notification shares. */
  commonLabels: Record<string, string>;
  alerts: AlertEntry[];
  createdAt: string;
}

/**
 * What a group's entries come to: the latest entry of each alert; an alert that fired and resolved again
 * before the group was sent is left out (nobody heard of it, nobody needs the all-clear). Enforcement
 * entries are kept as they are.
 */
export function collapse(entries: AlertEntry[]): AlertEntry[] {
  const latest = new Map<number, AlertEntry>();
  const firedHere = new Set<number>();
  const out: AlertEntry[] = [];
  for (const e of entries) {
    if (e.instanceId === null) {
      out.push(e);
      continue;
    }
    if (e.kind === 'firing') firedHere.add(e.instanceId);
    latest.set(e.instanceId, e);
  }
  for (const [id, e] of latest) {
    if (e.status === 'resolved' && firedHere.has(id)) continue;
    out.push(e);
  }
  return out;
}

export function buildPayload(
  row: NotificationRow,
  channel: ChannelRow,
  alerts: AlertEntry[],
): NotificationPayload {
  return {
    version: '1',
    notificationId: row.id,
    groupKey: row.group_key,
    status: alerts.some((a) => a.status === 'firing') ? 'firing' : 'resolved',
    receiver: channel.name,
    ruleId: row.rule_id,
    poolId: row.pool_id,
    commonLabels: commonLabels(alerts),
    alerts,
    createdAt: row.created_at.toISOString(),
  };
}

function commonLabels(alerts: AlertEntry[]): Record<string, string> {
  const [first, ...rest] = alerts;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(first?.labels ?? {}))
    if (rest.every((a) => a.labels[k] === v)) out[k] = v;
  return out;
}

/** `[FIRING:2] Host load high` — for e-mail subjects and logs. */
export function title(p: NotificationPayload): string {
  const firing = p.alerts.filter((a) => a.status === 'firing').length;
  const name = p.commonLabels.alertname ?? p.alerts[0]?.labels.alertname ?? 'herd';
  const where = p.commonLabels.pool ? ` (pool ${p.commonLabels.pool})` : '';
  return `[${p.status.toUpperCase()}${p.status === 'firing' ? `:${firing}` : ''}] ${name}${where}`;
}
