import type { MetricsStore, RangeQuery } from '../../ingest/store/metrics-store.js';
import { graphRange, type Rollups } from '../../ingest/store/rollups.js';
import type { Config } from '../../lib/config.js';
import type { Database } from '../../schema/db.js';
import { assertPool } from '../access/access.service.js';
import type { AuthUser } from '../auth/auth-user.js';
import { notFound } from '../http/errors.js';
import { findMetric, type GraphLine } from '../metrics/metric-catalog.js';
import { usernames } from '../quota/quota.repository.js';
import { RESOURCE_KEYS, type ResourceKey } from '../quota/quota.service.js';
import { quotaStatuses } from '../quota-enforcer/quota-status.js';
import {
  type AllocationResource,
  CAPACITY_MEASUREMENT,
  type PoolFigures,
  poolFigures,
  QUOTA_MEASUREMENT,
  quotaUserTag,
} from './capacity-sampler.js';
import { DAY_SECONDS, type Forecast, type FullIn, forecast, type Seasonality } from './forecast.js';
import { poolKind } from './forecast.repository.js';

/** The history a forecast is fitted to, and the width of its buckets (a multiple of the rollup step). */
export const HISTORY_DAYS = 30;
export const FORECAST_STEP_SECONDS = 3600;
export const DEFAULT_HORIZON_DAYS = 30;
export const MAX_HORIZON_DAYS = 365;

export const FORECAST_RESOURCES = ['cpu', 'memory', 'storage'] as const;
export type ForecastResource = (typeof FORECAST_RESOURCES)[number];
export type ForecastKind = 'use' | 'allocation';

/** The quota resource each forecast resource stands for (nics and vms have none: only unfiltered). */
export const QUOTA_RESOURCE: Record<ForecastResource, ResourceKey> = {
  cpu: 'vcpus',
  memory: 'memoryMiB',
  storage: 'storageGiB',
};

export interface ForecastDeps {
  db: Database;
  config: Config;
  store?: MetricsStore;
  rollups?: Rollups;
}

export interface ForecastQuery {
  horizonDays?: number;
  resource?: ForecastResource;
}

export interface SeriesForecast {
  capacity: number | null;
  insufficientHistory: boolean;
  reason: string | null;
  history: Array<[number, number]>;
  forecast: Array<{ time: number; value: number; lower: number; upper: number }>;
  fullInDays: FullIn | null;
  slopePerDay: Forecast['slopePerDay'];
  seasonality: Seasonality;
}

export interface ResourceForecast extends SeriesForecast {
  resource: ForecastResource;
  kind: ForecastKind;
  unit: string;
}

export interface QuotaForecast extends SeriesForecast {
  poolId: number;
  userId: number | null;
  username: string | null;
  resource: ResourceKey;
}

export interface PoolForecast {
  poolId: number;
  kind: 'hardware' | 'vm';
  now: number;
  from: number;
  horizonDays: number;
  stepSeconds: number;
  coverage: number;
  resources: ResourceForecast[];
  quotas: QuotaForecast[];
}

/** GET /pools/:id/forecast: as the pool's other endpoints, 404 for a pool the caller may not see. */
export async function getPoolForecast(
  deps: ForecastDeps,
  user: AuthUser,
  poolId: number,
  q: ForecastQuery,
  nowMs = Date.now(),
): Promise<PoolForecast> {
  if (!(await poolKind(deps.db, poolId))) throw notFound('pool');
  await assertPool(deps.db, user, poolId, 'view');
  // Without a metrics store (a process with no store) there is no history: every series says so.
  return poolForecast(deps, poolId, q, nowMs);
}

/**
 * Forecasts of a pool (no access check): for a hardware pool, use (busy CPU cores against the hosts' CPUs,
 * memory used against their memory, from the collectd figures) and allocation (vCPUs, memory and storage that
 * VMs hold against what may be allocated, from herd's samples); for any pool, each quota row on it (used against
 * limit). Each from the last HISTORY_DAYS of hourly buckets (the rollups) to `horizonDays` ahead.
 */
export async function poolForecast(
  deps: ForecastDeps,
  poolId: number,
  q: ForecastQuery,
  nowMs = Date.now(),
): Promise<PoolForecast> {
  const pool = await poolKind(deps.db, poolId);
  if (!pool) throw notFound('pool');
  const now = nowMs / 1000;
  const step = FORECAST_STEP_SECONDS;
  const from = Math.floor((now - HISTORY_DAYS * DAY_SECONDS) / step) * step;
  const horizonDays = q.horizonDays ?? DEFAULT_HORIZON_DAYS;
  const wanted = (r: ForecastResource) => q.resource === undefined || q.resource === r;
  const read = reader(deps, from, now);
  const project = (history: Array<[number, number]>, capacity: number | null): SeriesForecast => {
    const f = forecast({
      history,
      capacity,
      now,
      horizonSeconds: horizonDays * DAY_SECONDS,
      stepSeconds: step,
    });
    return {
      capacity,
      insufficientHistory: f.insufficientHistory,
      reason: f.reason,
      history: f.history,
      forecast: f.points,
      fullInDays: f.fullInDays,
      slopePerDay: f.slopePerDay,
      seasonality: f.seasonality,
    };
  };

  const resources: ResourceForecast[] = [];
  if (pool.kind === 'hardware') {
    const figures = await poolFigures(deps.db, poolId);
    const use = await useHistory(deps, figures, wanted, { from, to: now });
    if (wanted('cpu'))
      resources.push({
        resource: 'cpu',
        kind: 'use',
        unit: 'cores',
        ...project(use.cpu, figures.hosts.length ? figures.cpus : null),
      });
    if (wanted('memory'))
      resources.push({
        resource: 'memory',
        kind: 'use',
        unit: 'MiB',
        ...project(use.memory, figures.hosts.length ? figures.memoryMiB : null),
      });
    const allocations: Array<[ForecastResource, AllocationResource, string]> = [
      ['cpu', 'vcpus', 'vCPUs'],
      ['memory', 'memory_mib', 'MiB'],
      ['storage', 'storage_gib', 'GiB'],
    ];
    for (const [resource, field, unit] of allocations) {
      if (!wanted(resource)) continue;
      const history = await read({
        measurement: CAPACITY_MEASUREMENT,
        field: `${field}_allocated`,
        tags: { pool: String(poolId) },
      });
      const known = field === 'storage_gib' ? figures.storagePools > 0 : figures.hosts.length > 0;
      resources.push({
        resource,
        kind: 'allocation',
        unit,
        ...project(history, known ? figures.capacity[field] : null),
      });
    }
  }

  const statuses = await quotaStatuses(deps.db, [poolId]);
  const names = await usernames(
    deps.db,
    statuses.flatMap((s) => (s.userId === null ? [] : [s.userId])),
  );
  const keys = q.resource === undefined ? RESOURCE_KEYS : [QUOTA_RESOURCE[q.resource]];
  const quotas: QuotaForecast[] = [];
  for (const s of statuses) {
    for (const key of keys) {
      const limit = s.limits[key];
      if (limit === null) continue;
      const history = await read({
        measurement: QUOTA_MEASUREMENT,
        field: `used_${key}`,
        tags: { pool: String(poolId), user: quotaUserTag(s.userId) },
      });
      quotas.push({
        poolId,
        userId: s.userId,
        username: s.userId === null ? null : (names.get(s.userId) ?? null),
        resource: key,
        ...project(history, limit),
      });
    }
  }
  return {
    poolId,
    kind: pool.kind,
    now,
    from,
    horizonDays,
    stepSeconds: step,
    coverage: 0.95,
    resources,
    quotas,
  };
}

type Read = (q: Pick<RangeQuery, 'measurement' | 'field' | 'tags'>) => Promise<Array<[number, number]>>;

/** Hourly means of one series over the history, from the rollups (and the raw points they do not hold yet). */
function reader(deps: ForecastDeps, from: number, to: number): Read {
  return async (q) => {
    if (!deps.store) return [];
    const { series } = await graphRange(deps.store, deps.rollups, {
      ...q,
      from,
      to,
      step: FORECAST_STEP_SECONDS,
      agg: 'mean',
    });
    return series[0]?.points ?? [];
  };
}

/** Busy CPU cores and memory used of the pool's hosts, summed, as the pool's graphs compute them. */
async function useHistory(
  deps: ForecastDeps,
  figures: PoolFigures,
  wanted: (r: ForecastResource) => boolean,
  span: { from: number; to: number },
): Promise<{ cpu: Array<[number, number]>; memory: Array<[number, number]> }> {
  const out = { cpu: [] as Array<[number, number]>, memory: [] as Array<[number, number]> };
  if (!figures.hosts.length || !deps.store) return out;
  const store = deps.store;
  const subjects = { kind: 'host' as const, names: figures.hosts, vcpus: 0, cpus: figures.cpus };
  const mode = deps.config.collectd.multiValue;
  const range = async (query: Omit<RangeQuery, 'from' | 'to' | 'step'>) => {
    const { series } = await graphRange(store, deps.rollups, {
      ...query,
      ...span,
      step: FORECAST_STEP_SECONDS,
    });
    return series;
  };
  const averages = (lines: GraphLine[], name: string, scale: number): Array<[number, number]> =>
    (lines.find((l) => l.name === name)?.points ?? []).flatMap(([t, avg]) =>
      avg === null ? [] : [[t, avg * scale] as [number, number]],
    );
  if (wanted('cpu') && figures.cpus > 0) {
    const lines = await findMetric('host', 'cpu')!.compute(range, subjects, mode);
    out.cpu = averages(lines, 'busy', figures.cpus / 100);
  }
  if (wanted('memory')) {
    const lines = await findMetric('host', 'memory')!.compute(range, subjects, mode);
    out.memory = averages(lines, 'used', 1);
  }
  return out;
}
