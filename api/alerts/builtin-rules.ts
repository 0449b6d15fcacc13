import type { Insertable } from 'kysely';
import type { Database } from '../../schema/db.js';
import type { AlertRulesTable } from '../../schema/index.js';
import { insertBuiltinRules } from './alerts.repository.js';

/**
 * The rules herd ships, enabled. Inserted at start when missing (by `builtin` key); operators may then edit or
 * disable them and their edits are kept across restarts. Built-in rules cannot be deleted.
 * A host that does not report load or memory (plugin not loaded) has nothing to alert about, hence nodata
 * `ok` there; a host that stopped reporting altogether is the host-unreachable rule's business.
 */
export const BUILTIN_RULES: Insertable<AlertRulesTable>[] = [
  {
    builtin: 'host-load',
    name: 'Host load high',
    description: "The host's 5-minute load average per CPU has been above 1.5 for 5 minutes.",
    scope: 'global',
    metric: JSON.stringify({ source: 'live', field: 'load5PerCpu' }),
    nodata_policy: 'ok',
    condition: 'above',
    threshold: 1.5,
    pending_seconds: 300,
    keep_firing_seconds: 120,
    severity: 'warning',
    labels: JSON.stringify({ category: 'host' }),
  },
  {
    builtin: 'host-memory',
    name: 'Host memory nearly full',
    description: 'More than 95 % of the host memory has been in use (not counting caches) for 5 minutes.',
    scope: 'global',
    metric: JSON.stringify({ source: 'live', field: 'memoryUsedPercent' }),
    nodata_policy: 'ok',
    condition: 'above',
    threshold: 95,
    pending_seconds: 300,
    keep_firing_seconds: 120,
    severity: 'warning',
    labels: JSON.stringify({ category: 'host' }),
  },
  {
    builtin: 'host-unreachable',
    name: 'Host unreachable',
    description: 'No collectd traffic from the host for 3 intervals, and the libvirt heartbeat fails.',
    scope: 'global',
    metric: JSON.stringify({ source: 'host', field: 'unreachable' }),
    condition: 'above',
    threshold: 0.5,
    pending_seconds: 0,
    keep_firing_seconds: 60,
    severity: 'critical',
    labels: JSON.stringify({ category: 'host' }),
  },
  {
    builtin: 'quota-near-limit',
    name: 'Quota above 90 %',
    description: 'A quota limit (of a user or of a pool total) is more than 90 % used.',
    scope: 'global',
    metric: JSON.stringify({ source: 'quota', field: 'usedPercent' }),
    condition: 'above',
    threshold: 90,
    pending_seconds: 0,
    keep_firing_seconds: 60,
    severity: 'warning',
    labels: JSON.stringify({ category: 'quota' }),
  },
];

export async function ensureBuiltinRules(db: Database): Promise<void> {
  await insertBuiltinRules(db, BUILTIN_RULES);
}
