import type { LiveView } from '../../ingest/live-view.js';
import type { MetricsStore } from '../../ingest/store/metrics-store.js';
import type { Database } from '../../schema/db.js';
import type { NotificationMatch, StoredSeverity } from '../events/events.repository.js';
import type { ForecastResource, SeriesForecast } from '../forecast/forecast.service.js';
import { QUOTA_RESOURCE } from '../forecast/forecast.service.js';
import { type ForecastSource, ruleHorizonDays } from '../forecast/forecast-source.js';
import { RESOURCE_KEYS } from '../quota/quota.service.js';
import { type QuotaStatus, quotaStatuses } from '../quota-enforcer/quota-status.js';
import type { AlertRule, Clock, MetricSpec } from './alert-rule.js';
import { type Observation, reduce, windowValue } from './alert-state.js';
import { type FleetHost, fleetHosts, poolTree } from './alerts.repository.js';

/** What a rule is evaluated for: a host, a pool (aggregate) or a quota limit. */
export interface Subject {
  key: string;
  poolId: number | null;
  hostId: number | null;
  labels: Record<string, string>;
}

export interface Observed {
  subject: Subject;
  obs: Observation;
}

export type LiveSource = Pick<LiveView, 'hostSummary' | 'get' | 'series' | 'hostNames'>;
export type StoreSource = Pick<MetricsStore, 'range'>;
/** The events table, for `notification` rules: matching notifications per host in a time range. */
export type EventSource = (
  hostIds: number[],
  match: NotificationMatch,
  from: Date,
  to: Date,
) => Promise<Map<number, number>>;

/** A host silent for this many of its collectd intervals counts as not reporting. */
export const STALE_INTERVALS = 3;
/** collectd's default interval, for hosts never heard from. */
const DEFAULT_INTERVAL_S = 10;
/** How far back a store query with no window looks for the latest value. */
const DEFAULT_LOOKBACK_S = 300;
const MiB = 1024 * 1024;
const NO_DATA: Observation = { kind: 'nodata' };
const UNKNOWN: Observation = { kind: 'unknown' };

/** Fleet facts read once per evaluation round and shared by every rule of that round. */
export class Round {
  private hostsP?: Promise<FleetHost[]>;
  private poolsP?: Promise<Map<number, { name: string; parent: number | null }>>;
  private quotasP?: Promise<{ statuses: QuotaStatus[]; users: Map<number, string> }>;

  constructor(
    private readonly db: Database,
    readonly now: number,
  ) {}

  hosts(): Promise<FleetHost[]> {
    this.hostsP ??= fleetHosts(this.db);
    return this.hostsP;
  }

  pools(): Promise<Map<number, { name: string; parent: number | null }>> {
    this.poolsP ??= poolTree(this.db).then(
      (rows) => new Map(rows.map((p) => [p.id, { name: p.name, parent: p.parent_id }])),
    );
    return this.poolsP;
  }

  quotas(): Promise<{ statuses: QuotaStatus[]; users: Map<number, string> }> {
    this.quotasP ??= (async () => {
      const statuses = await quotaStatuses(this.db);
      const ids = [...new Set(statuses.map((s) => s.userId).filter((u): u is number => u !== null))];
      const rows = ids.length
        ? await this.db.selectFrom('users').select(['id', 'username']).where('id', 'in', ids).execute()
        : [];
      return { statuses, users: new Map(rows.map((r) => [r.id, r.username])) };
    })();
    return this.quotasP;
  }

  /** The pool and every pool below it. */
  async subtree(poolId: number): Promise<Set<number>> {
    const pools = await this.pools();
    const out = new Set<number>([poolId]);
    for (let grew = true; grew; ) {
      grew = false;
      for (const [id, p] of pools) {
        if (p.parent !== null && out.has(p.parent) && !out.has(id)) {
          out.add(id);
          grew = true;
        }
      }
    }
    return out;
  }

  /** The pool and its ancestors, nearest first. */
  async chain(poolId: number): Promise<number[]> {
    const pools = await this.pools();
    const out: number[] = [];
    for (let id: number | null = poolId; id !== null && !out.includes(id); id = pools.get(id)?.parent ?? null)
      out.push(id);
    return out;
  }
}

/**
 * Reads what a rule measures for each of its subjects. Live-view metrics are sampled at every evaluation
 * into a window kept here (in memory: after a restart the window refills); store metrics are queried over
 * the window.
 */
export class MetricReader {
  private readonly windows = new Map<string, Array<[number, number]>>();
  private touched = new Set<string>();
  private readonly startedAt: number;

  constructor(
    private readonly sources: {
      liveView?: LiveSource;
      store?: StoreSource;
      events?: EventSource;
      forecast?: ForecastSource;
    },
    clock: Clock,
  ) {
    this.startedAt = clock();
  }

  get hasLiveView(): boolean {
    return this.sources.liveView !== undefined;
  }

  async observe(rule: AlertRule, round: Round): Promise<Observed[]> {
    const m = rule.metric;
    if (m.source === 'quota') return this.quotaObservations(rule, round);
    if (m.source === 'forecast') return this.forecastObservations(rule, round);

    const hosts = await this.hostsInScope(rule, round);
    const pools = await round.pools();
    let perHost: Observation[];
    try {
      perHost = await this.hostValues(rule, hosts, round.now);
    } catch (err) {
      perHost = hosts.map(() => ({ kind: 'error', message: (err as Error).message }));
    }
    if (rule.scope === 'pool' && rule.aggregate) {
      const poolId = rule.poolId!;
      const subject: Subject = {
        key: `pool:${poolId}`,
        poolId,
        hostId: null,
        labels: { pool: pools.get(poolId)?.name ?? String(poolId), pool_id: String(poolId) },
      };
      return [
        { subject, obs: this.windowed(rule, subject.key, combine(perHost, rule.aggregate), round.now) },
      ];
    }
    return hosts.map((h, i) => {
      const subject: Subject = {
        key: `host:${h.id}`,
        poolId: h.pool_id,
        hostId: h.id,
        labels: {
          host: h.hostname,
          host_id: String(h.id),
          pool: pools.get(h.pool_id)?.name ?? '',
          pool_id: String(h.pool_id),
        },
      };
      return { subject, obs: this.windowed(rule, subject.key, perHost[i], round.now) };
    });
  }

  /** Forgets the windows of subjects not evaluated since the last call (rules or hosts gone). */
  endRound(): void {
    for (const key of this.windows.keys()) if (!this.touched.has(key)) this.windows.delete(key);
    this.touched = new Set();
  }

  private async hostsInScope(rule: AlertRule, round: Round): Promise<FleetHost[]> {
    const hosts = (await round.hosts()).filter((h) => h.enabled);
    if (rule.scope === 'host') return hosts.filter((h) => h.id === rule.hostId);
    if (rule.scope === 'pool') {
      const pools = await round.subtree(rule.poolId!);
      return hosts.filter((h) => pools.has(h.pool_id));
    }
    return hosts;
  }

  /** Live metrics: the latest value (windowed later); store metrics: already reduced over the window. */
  private async hostValues(rule: AlertRule, hosts: FleetHost[], now: number): Promise<Observation[]> {
    const m = rule.metric;
    if (m.source === 'store') return this.storeValues(rule, hosts, now);
    if (m.source === 'notification') return this.notificationCounts(rule, hosts, now);
    const live = this.sources.liveView;
    return hosts.map((h) => {
      const name = live ? liveName(live, h.hostname) : undefined;
      const value =
        m.source === 'host'
          ? this.hostFact(m, h, name, now)
          : name
            ? liveValue(live!, name, h, m, now)
            : undefined;
      if (value !== undefined && !Number.isNaN(value)) return { kind: 'value', value };
      return this.justStarted(live && name ? live.hostSummary(name) : undefined, now) ? UNKNOWN : NO_DATA;
    });
  }

  /**
   * Whether this process started less than STALE_INTERVALS of the host's intervals ago: a host it has not heard
   * from since (its last figures older, shared by a process before a restart, or none) may simply not have sent
   * its next interval yet. Silence is counted from the start, as for `unreachable`.
   */
  private justStarted(summary: { lastSeen: number; interval: number } | undefined, now: number): boolean {
    if (summary && summary.lastSeen >= this.startedAt) return false;
    const interval = summary?.interval || DEFAULT_INTERVAL_S;
    return now - this.startedAt <= STALE_INTERVALS * interval * 1000;
  }

  private hostFact(
    m: MetricSpec,
    h: FleetHost,
    liveHost: string | undefined,
    now: number,
  ): number | undefined {
    const summary = liveHost ? this.sources.liveView!.hostSummary(liveHost) : undefined;
    if (m.field === 'secondsSinceSeen') return summary ? (now - summary.lastSeen) / 1000 : undefined;
    // unreachable: collectd silent for 3 intervals (counted from herd's start for a host never heard from)
    // while libvirt's heartbeat fails too: one of the two alone is a plugin or a libvirtd problem, not a host down.
    const interval = summary?.interval || DEFAULT_INTERVAL_S;
    const silent = now - (summary?.lastSeen ?? this.startedAt) > STALE_INTERVALS * interval * 1000;
    const heartbeatFailing = h.heartbeat_error !== null || h.state === 'unreachable' || h.state === 'down';
    return silent && heartbeatFailing ? 1 : 0;
  }

  private async storeValues(rule: AlertRule, hosts: FleetHost[], now: number): Promise<Observation[]> {
    const store = this.sources.store;
    if (!store) throw new Error('no metrics store in this process');
    if (!hosts.length) return [];
    const m = rule.metric;
    const live = this.sources.liveView;
    const names = hosts.map((h) => (live ? liveName(live, h.hostname) : undefined) ?? h.hostname);
    const lookback = rule.windowSeconds > 0 ? rule.windowSeconds : DEFAULT_LOOKBACK_S;
    const to = now / 1000;
    const series = await store.range({
      measurement: m.measurement!,
      field: m.field,
      tags: { ...m.tags, host: names },
      from: to - lookback,
      to,
      step: Math.max(1, Math.ceil(lookback / 30)),
      agg: rule.windowFunction,
      rate: m.rate,
      groupBy: ['host'],
      combine: m.combine ?? 'sum',
    });
    const byHost = new Map(series.map((s) => [s.tags.host, s.points.map(([, v]) => v)]));
    return names.map((name) => {
      const values = byHost.get(name);
      if (!values?.length) return NO_DATA;
      // With no window, 'last' over the lookback is the latest value.
      return { kind: 'value', value: reduce(values, rule.windowSeconds > 0 ? rule.windowFunction : 'last') };
    });
  }

  /** Counts of matching notifications over the window: a host without any has 0, not missing data. */
  private async notificationCounts(rule: AlertRule, hosts: FleetHost[], now: number): Promise<Observation[]> {
    const events = this.sources.events;
    if (!events) throw new Error('no events table in this process');
    const m = rule.metric;
    const lookback = rule.windowSeconds > 0 ? rule.windowSeconds : DEFAULT_LOOKBACK_S;
    const counts = await events(
      hosts.map((h) => h.id),
      {
        severity: m.severity === undefined ? undefined : (m.severity.toUpperCase() as StoredSeverity),
        plugin: m.plugin,
        type: m.type,
        messageMatch: m.messageMatch,
      },
      new Date(now - lookback * 1000),
      new Date(now),
    );
    return hosts.map((h) => ({ kind: 'value', value: counts.get(h.id) ?? 0 }));
  }

  private async quotaObservations(rule: AlertRule, round: Round): Promise<Observed[]> {
    const [{ statuses, users }, pools] = await Promise.all([round.quotas(), round.pools()]);
    const inScope = rule.scope === 'pool' ? await round.subtree(rule.poolId!) : undefined;
    const out: Observed[] = [];
    for (const s of statuses) {
      if (inScope && !inScope.has(s.poolId)) continue;
      for (const resource of RESOURCE_KEYS) {
        const limit = s.limits[resource];
        if (limit === null) continue;
        const used = s.used[resource];
        const value = limit > 0 ? (used / limit) * 100 : used > 0 ? Number.POSITIVE_INFINITY : 0;
        const user = s.userId === null ? 'total' : String(s.userId);
        const subject: Subject = {
          key: `quota:${s.poolId}:${user}:${resource}`,
          poolId: s.poolId,
          hostId: null,
          labels: {
            pool: pools.get(s.poolId)?.name ?? String(s.poolId),
            pool_id: String(s.poolId),
            user: s.userId === null ? '(pool total)' : (users.get(s.userId) ?? user),
            ...(s.userId === null ? {} : { user_id: String(s.userId) }),
            resource,
            used: String(used),
            limit: String(limit),
          },
        };
        out.push({ subject, obs: this.windowed(rule, subject.key, { kind: 'value', value }, round.now) });
      }
    }
    return out;
  }

  /**
   * Days until full by the capacity forecast: per pool in scope (the rule's, or every pool), its `use` or
   * `allocation` of the resource, or each quota row on it limiting the resource.
   */
  private async forecastObservations(rule: AlertRule, round: Round): Promise<Observed[]> {
    const source = this.sources.forecast;
    if (!source) throw new Error('no capacity forecast in this process');
    const m = rule.metric;
    const resource = m.resource as ForecastResource;
    const pools = await round.pools();
    const poolIds = rule.scope === 'pool' ? [rule.poolId!] : [...pools.keys()].sort((a, b) => a - b);
    const { users } = m.kind === 'quota' ? await round.quotas() : { users: new Map<number, string>() };
    const out: Observed[] = [];
    for (const poolId of poolIds) {
      const poolLabels = { pool: pools.get(poolId)?.name ?? String(poolId), pool_id: String(poolId) };
      let answer: Awaited<ReturnType<ForecastSource>>;
      try {
        answer = await source(poolId, resource, ruleHorizonDays(rule.threshold));
      } catch (err) {
        const subject: Subject = {
          key: `forecast:${poolId}:${resource}:${m.kind}`,
          poolId,
          hostId: null,
          labels: poolLabels,
        };
        out.push({ subject, obs: { kind: 'error', message: (err as Error).message } });
        continue;
      }
      const push = (key: string, labels: Record<string, string>, f: SeriesForecast) => {
        const subject: Subject = { key, poolId, hostId: null, labels: { ...poolLabels, ...labels } };
        out.push({ subject, obs: this.windowed(rule, key, daysUntilFull(f, m.field), round.now) });
      };
      if (m.kind === 'quota') {
        for (const q of answer.quotas) {
          if (q.resource !== QUOTA_RESOURCE[resource]) continue;
          const user = q.userId === null ? 'total' : String(q.userId);
          push(
            `forecast:${poolId}:${user}:${q.resource}:quota`,
            {
              user: q.userId === null ? '(pool total)' : (users.get(q.userId) ?? q.username ?? user),
              ...(q.userId === null ? {} : { user_id: String(q.userId) }),
              resource: q.resource,
              kind: 'quota',
            },
            q,
          );
        }
        continue;
      }
      const r = answer.resources.find((x) => x.resource === resource && x.kind === m.kind);
      if (r) push(`forecast:${poolId}:${resource}:${m.kind}`, { resource, kind: r.kind }, r);
    }
    return out;
  }

  /** Applies the rule's window function to live samples; store values come windowed already. */
  private windowed(rule: AlertRule, subjectKey: string, obs: Observation, now: number): Observation {
    if (rule.windowSeconds <= 0 || rule.metric.source === 'store' || rule.metric.source === 'notification')
      return obs;
    const key = `${rule.id}|${subjectKey}`;
    this.touched.add(key);
    let samples = this.windows.get(key);
    if (!samples) {
      samples = [];
      this.windows.set(key, samples);
    }
    if (obs.kind === 'value') samples.push([now, obs.value]);
    const windowMs = rule.windowSeconds * 1000;
    while (samples.length && samples[0][0] <= now - windowMs) samples.shift();
    if (obs.kind === 'error' || (obs.kind === 'unknown' && samples.length === 0)) return obs;
    const value = windowValue(samples, rule.windowFunction, now, windowMs);
    return value === undefined ? NO_DATA : { kind: 'value', value };
  }
}

/** The forecast's days until full; Infinity when not within its horizon; no data without a forecast. */
function daysUntilFull(f: SeriesForecast, field: string | undefined): Observation {
  if (f.insufficientHistory || f.capacity === null) return NO_DATA;
  if (!f.fullInDays) return { kind: 'value', value: Number.POSITIVE_INFINITY };
  return { kind: 'value', value: field === 'daysUntilFullEarliest' ? f.fullInDays.low : f.fullInDays.likely };
}

function combine(values: Observation[], how: 'mean' | 'max' | 'min' | 'sum'): Observation {
  const numbers = values.flatMap((o) => (o.kind === 'value' ? [o.value] : []));
  if (numbers.length) return { kind: 'value', value: reduce(numbers, how) };
  return values.find((o) => o.kind === 'error') ?? values.find((o) => o.kind === 'unknown') ?? NO_DATA;
}

/** The name collectd reports a host under: herd's hostname, or the same short name (FQDN vs short). */
function liveName(live: LiveSource, hostname: string): string | undefined {
  if (live.hostSummary(hostname)) return hostname;
  const short = hostname.split('.')[0];
  return live.hostNames().find((n) => n.split('.')[0] === short);
}

function liveValue(
  live: LiveSource,
  name: string,
  h: FleetHost,
  m: MetricSpec,
  now: number,
): number | undefined {
  const summary = live.hostSummary(name);
  if (!summary || now - summary.lastSeen > STALE_INTERVALS * (summary.interval || DEFAULT_INTERVAL_S) * 1000)
    return undefined;
  if (m.field !== undefined) {
    const cpus = summary.cpuCount ?? (h.cpus || undefined);
    switch (m.field) {
      case 'load1PerCpu':
        return perCpu(summary.load1, cpus);
      case 'load5PerCpu':
        return perCpu(summary.load5, cpus);
      case 'load15PerCpu':
        return perCpu(summary.load15, cpus);
      case 'memoryUsedPercent':
        return memoryUsedPercent(live, name, summary.memoryUsedMiB, h.memory_mib);
      default:
        return summary[m.field as 'load1'];
    }
  }
  const series = live.get(name, m.plugin!, m.pluginInstance ?? '', m.type!, m.typeInstance ?? '');
  if (!series) return undefined;
  const index = typeof m.value === 'number' ? m.value : m.value ? series.names.indexOf(m.value) : 0;
  const value = m.rate ? series.rates[index] : series.values[index];
  return value ?? undefined;
}

function perCpu(load: number | undefined, cpus: number | undefined): number | undefined {
  return load === undefined || !cpus ? undefined : load / cpus;
}

/** Used over total, total being the sum of the memory plugin's states (or the inventory's size). */
function memoryUsedPercent(
  live: LiveSource,
  name: string,
  usedMiB: number | undefined,
  inventoryMiB: number,
): number | undefined {
  if (usedMiB === undefined) return undefined;
  let total = 0;
  for (const s of live.series(name)) if (s.plugin === 'memory' && s.type === 'memory') total += s.values[0];
  const totalMiB = total > 0 ? total / MiB : inventoryMiB;
  return totalMiB > 0 ? (usedMiB / totalMiB) * 100 : undefined;
}
