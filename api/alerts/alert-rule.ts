import type { Selectable } from 'kysely';
import type { AlertRulesTable, AlertSeverity } from '../../schema/index.js';

/** Milliseconds since the epoch. Injected everywhere alerting reads the time, so tests can drive it. */
export type Clock = () => number;

export type WindowFunction = 'last' | 'mean' | 'max' | 'min';
export type Condition = 'above' | 'below' | 'absent';
export type Aggregate = 'mean' | 'max' | 'min' | 'sum';
export type NodataPolicy = 'nodata' | 'ok' | 'alerting' | 'keep';
export type ErrorPolicy = 'error' | 'ok' | 'alerting' | 'keep';
export type { AlertSeverity };

/** Host figures the live view gives (HostLiveSummary) and the ones derived from them. */
export const LIVE_FIELDS = [
  'load1',
  'load5',
  'load15',
  'load1PerCpu',
  'load5PerCpu',
  'load15PerCpu',
  'memoryFreeMiB',
  'memoryUsedMiB',
  'memoryUsedPercent',
  'cpuBusyPercent',
] as const;
export type LiveField = (typeof LIVE_FIELDS)[number];

export const HOST_FIELDS = ['unreachable', 'secondsSinceSeen'] as const;
export const QUOTA_FIELDS = ['usedPercent'] as const;

/** collectd notification severities a `notification` rule may count. */
export const NOTIFICATION_SEVERITIES = ['failure', 'warning', 'okay'] as const;
export const METRIC_SOURCES = ['live', 'store', 'host', 'quota', 'notification', 'forecast'] as const;
/** `daysUntilFull`: the forecast's likely day; `daysUntilFullEarliest`: its interval's upper bound's. */
export const FORECAST_FIELDS = ['daysUntilFull', 'daysUntilFullEarliest'] as const;
export const FORECAST_METRIC_RESOURCES = ['cpu', 'memory', 'storage'] as const;
export const FORECAST_METRIC_KINDS = ['use', 'allocation', 'quota'] as const;

/**
 * What a rule measures, per subject:
 * - `live` with `field`: a host summary figure from the live view (LIVE_FIELDS);
 * - `live` with `plugin`/`type` (and instances): one collectd series of the host, value `value` (a data source
 *   name or index, default the first), its per-second rate with `rate`;
 * - `store`: a measurement of the metrics store (`field` default `value`, extra `tags`), series of one host
 *   combined with `combine` (default sum);
 * - `host`: `unreachable` (1 when collectd has been silent for 3 intervals and the libvirt heartbeat fails) or
 *   `secondsSinceSeen` (collectd);
 * - `quota`: `usedPercent` of each limit of each quota row (subject: pool × user × resource);
 * - `notification`: how many collectd notifications of the host (its guests' included) arrived within the
 *   window (`windowSeconds`, 300 when 0), counting only those of `severity`, `plugin`, `type` and whose message
 *   contains `messageMatch` (any case) where given.
 * - `forecast`: days until `resource` (cpu, memory, storage) is full by the capacity forecast (api/forecast), of
 *   its `kind`: `use` or `allocation` of a hardware pool (subject: the pool; every pool for a global rule), or
 *   `quota` (subject: each quota row limiting it). Infinity when not full within the forecast's horizon; no data
 *   while the history is too short.
 */
export interface MetricSpec {
  source: (typeof METRIC_SOURCES)[number];
  field?: string;
  plugin?: string;
  pluginInstance?: string;
  type?: string;
  typeInstance?: string;
  value?: string | number;
  rate?: boolean;
  measurement?: string;
  tags?: Record<string, string>;
  combine?: Aggregate;
  severity?: (typeof NOTIFICATION_SEVERITIES)[number];
  messageMatch?: string;
  /** forecast: cpu, memory or storage. */
  resource?: string;
  /** forecast: use, allocation or quota. */
  kind?: string;
}

export interface AlertRule {
  id: number;
  builtin: string | null;
  name: string;
  description: string;
  enabled: boolean;
  scope: 'global' | 'pool' | 'host';
  poolId: number | null;
  hostId: number | null;
  /** Pool scope only: null, each host on its own; else one value for the pool combined this way. */
  aggregate: Aggregate | null;
  metric: MetricSpec;
  condition: Condition;
  threshold: number | null;
  windowSeconds: number;
  windowFunction: WindowFunction;
  pendingSeconds: number;
  keepFiringSeconds: number;
  nodataPolicy: NodataPolicy;
  errorPolicy: ErrorPolicy;
  severity: AlertSeverity;
  labels: Record<string, string>;
  groupWaitSeconds: number;
  repeatIntervalSeconds: number;
  channelIds: number[] | null;
}

export type AlertRuleRow = Selectable<AlertRulesTable>;

export function toRule(row: AlertRuleRow): AlertRule {
  return {
    id: row.id,
    builtin: row.builtin,
    name: row.name,
    description: row.description,
    enabled: row.enabled,
    scope: row.scope,
    poolId: row.pool_id,
    hostId: row.host_id,
    aggregate: row.aggregate,
    metric: row.metric as unknown as MetricSpec,
    condition: row.condition,
    threshold: row.threshold,
    windowSeconds: row.window_seconds,
    windowFunction: row.window_function,
    pendingSeconds: row.pending_seconds,
    keepFiringSeconds: row.keep_firing_seconds,
    nodataPolicy: row.nodata_policy,
    errorPolicy: row.error_policy,
    severity: row.severity,
    labels: row.labels,
    groupWaitSeconds: row.group_wait_seconds,
    repeatIntervalSeconds: row.repeat_interval_seconds,
    channelIds: row.channel_ids,
  };
}

/** Why a metric spec cannot be evaluated (naming the field), or null when it can. */
export function metricProblem(m: MetricSpec, scope: AlertRule['scope']): string | null {
  switch (m.source) {
    case 'live':
      if (m.field !== undefined) {
        return (LIVE_FIELDS as readonly string[]).includes(m.field)
          ? null
          : `metric.field: one of ${LIVE_FIELDS.join(', ')} (or give plugin and type)`;
      }
      if (!m.plugin) return 'metric.plugin: required for a live series (or give field)';
      if (!m.type) return 'metric.type: required for a live series';
      return null;
    case 'store':
      return m.measurement ? null : 'metric.measurement: required for the store';
    case 'host':
      return (HOST_FIELDS as readonly string[]).includes(m.field ?? '')
        ? null
        : `metric.field: one of ${HOST_FIELDS.join(', ')}`;
    case 'quota':
      if (scope === 'host') return 'scope: quota rules apply to a pool or everything';
      return (QUOTA_FIELDS as readonly string[]).includes(m.field ?? '')
        ? null
        : `metric.field: one of ${QUOTA_FIELDS.join(', ')}`;
    case 'notification':
      if (m.severity !== undefined && !(NOTIFICATION_SEVERITIES as readonly string[]).includes(m.severity))
        return `metric.severity: one of ${NOTIFICATION_SEVERITIES.join(', ')}`;
      return null;
    case 'forecast':
      if (scope === 'host') return 'scope: forecast rules apply to a pool or everything';
      if (!(FORECAST_FIELDS as readonly string[]).includes(m.field ?? ''))
        return `metric.field: one of ${FORECAST_FIELDS.join(', ')}`;
      if (!(FORECAST_METRIC_RESOURCES as readonly string[]).includes(m.resource ?? ''))
        return `metric.resource: one of ${FORECAST_METRIC_RESOURCES.join(', ')}`;
      if (!(FORECAST_METRIC_KINDS as readonly string[]).includes(m.kind ?? ''))
        return `metric.kind: one of ${FORECAST_METRIC_KINDS.join(', ')}`;
      return null;
    default:
      return `metric.source: one of ${METRIC_SOURCES.join(', ')}`;
  }
}

export const SEVERITY_RANK: Record<AlertSeverity, number> = { info: 0, warning: 1, critical: 2 };
