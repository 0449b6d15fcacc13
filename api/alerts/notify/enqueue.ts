import type { Database } from '../../../schema/db.js';
import type { AlertSeverity } from '../../../schema/index.js';
import { SEVERITY_RANK } from '../alert-rule.js';
import { addToGroup, channelsFor } from '../alerts.repository.js';

/** One alert (or one enforcement action) inside a notification. */
export interface AlertEntry {
  /** The alert instance; null for a quota enforcement action. */
  instanceId: number | null;
  ruleId: number | null;
  kind: 'firing' | 'resolved' | 'repeat' | 'enforcement';
  status: 'firing' | 'resolved';
  severity: AlertSeverity;
  labels: Record<string, string>;
  summary: string;
  value: number | null;
  startsAt: string | null;
  endsAt: string | null;
  /** When the change happened. */
  at: string;
}

export interface Enqueue {
  ruleId: number | null;
  /** The pool the alerts are about and its ancestors, nearest first ([] for none). */
  poolChain: number[];
  /** The rule's own channels, or null for every channel covering the pool. */
  channelIds: number[] | null;
  severity: AlertSeverity;
  groupKey: string;
  entries: AlertEntry[];
  now: number;
  groupWaitSeconds: number;
}

/**
 * Adds entries to each matching channel's open notification of the group, in the caller's transaction: the
 * notification exists exactly when the change that caused it committed. Returns the channels reached.
 */
export async function enqueueNotification(trx: Database, n: Enqueue): Promise<number> {
  const channels = (await channelsFor(trx, n.poolChain, n.channelIds)).filter(
    (c) => SEVERITY_RANK[n.severity] >= SEVERITY_RANK[c.min_severity],
  );
  let reached = 0;
  for (const channel of channels) {
    const entries = channel.send_resolved ? n.entries : n.entries.filter((e) => e.status !== 'resolved');
    if (!entries.length) continue;
    await addToGroup(trx, {
      channelId: channel.id,
      ruleId: n.ruleId,
      poolId: n.poolChain[0] ?? null,
      groupKey: n.groupKey,
      alerts: entries,
      now: new Date(n.now),
      notBefore: new Date(n.now + n.groupWaitSeconds * 1000),
    });
    reached++;
  }
  return reached;
}
