import type { MetricsStore } from '../../ingest/store/metrics-store.js';
import { QueryError } from '../../ingest/store/range-query.js';
import { graphRange, type Rollups, wantsRollups } from '../../ingest/store/rollups.js';
import type { Config } from '../../lib/config.js';
import type { Database } from '../../schema/db.js';
import { assertPool, assertVm, vmVisibilityFilter } from '../access/access.service.js';
import type { AuthUser } from '../auth/auth-user.js';
import { badRequest, HttpError, notFound } from '../http/errors.js';
import { MAX_INT4 } from '../http/schemas.js';
import { graphStep, RAW_STEP_SECONDS } from './graph-step.js';
import {
  findMetric,
  type GraphLine,
  METRICS,
  type RangeFn,
  type Subjects,
  type Unit,
} from './metric-catalog.js';
import { hostForGraph, hostsUnder, poolForGraph, vmForGraph, vmsOfPool } from './metrics.repository.js';

export interface GraphQuery {
  entity: string;
  metric: string;
  from?: string;
  to?: string;
  step?: number;
  width?: number;
}

export interface GraphAnswer {
  entity: string;
  metric: string;
  title: string;
  unit: Unit;
  from: number;
  to: number;
  step: number;
  /** Buckets from here on are not complete yet (see partialFrom). */
  partialFrom: number;
  source: 'raw' | 'rollup';
  series: GraphLine[];
}

export interface GraphDeps {
  db: Database;
  config: Config;
  store?: MetricsStore;
  rollups?: Rollups;
}

const ENTITY = /^(host|vm|pool):([1-9]\d{0,9})$/;
const DEFAULT_SPAN = 3600;
const MAX_SPAN = 400 * 86_400;

/** A graph of one metric of a host, a VM or a pool the caller may see (404 otherwise). */
export async function graph(
  deps: GraphDeps,
  user: AuthUser,
  q: GraphQuery,
  nowMs = Date.now(),
): Promise<GraphAnswer> {
  const match = ENTITY.exec(q.entity);
  if (!match) throw badRequest('entity must be host:<id>, vm:<id> or pool:<id>', { field: 'entity' });
  const [, kind, id] = match;
  if (Number(id) > MAX_INT4)
    throw badRequest(`entity: ${kind} ids go up to ${MAX_INT4}`, { field: 'entity' });
  const subjects = await resolve(deps, user, kind as 'host' | 'vm' | 'pool', Number(id));
  const metric = findMetric(subjects.kind, q.metric);
  if (!metric) {
    const names = METRICS[subjects.kind].map((m) => m.name).join(', ');
    throw badRequest(`metric must be one of ${names} for this ${kind}`, { field: 'metric' });
  }
  if (!deps.store) throw new HttpError(503, 'unavailable', 'no metrics store in this process');
  const store = deps.store;

  const now = nowMs / 1000;
  const to = q.to === undefined ? now : parseTime(q.to, 'to');
  const from = q.from === undefined ? to - DEFAULT_SPAN : parseTime(q.from, 'from');
  if (!(to > from)) throw badRequest('to must be after from', { field: 'to' });
  if (to - from > MAX_SPAN) throw badRequest('from and to may be at most 400 days apart', { field: 'from' });

  const wanted = { from, to, series: subjects.names.length };
  const rollups = deps.rollups && wantsRollups(deps.rollups.settings, wanted, now) ? deps.rollups : undefined;
  const step = graphStep({
    from,
    to,
    width: q.width,
    step: q.step,
    base: rollups?.settings.stepSeconds ?? RAW_STEP_SECONDS,
  });
  const start = Math.floor(from / step) * step;
  let source: 'raw' | 'rollup' = 'raw';
  const range: RangeFn = async (query) => {
    const answer = await graphRange(store, rollups, { ...query, from: start, to, step });
    if (answer.source === 'rollup') source = 'rollup';
    return answer.series;
  };
  let series: GraphLine[] = [];
  if (subjects.names.length > 0) {
    try {
      series = await metric.compute(range, subjects, deps.config.collectd.multiValue);
    } catch (err) {
      if (err instanceof QueryError) throw badRequest(err.message);
      throw err;
    }
  }
  return {
    entity: q.entity,
    metric: metric.name,
    title: metric.title,
    unit: metric.unit,
    from: start,
    to,
    step,
    partialFrom: partialFrom(now, step),
    source,
    series: series.map((l) => ({ ...l, points: withGaps(l.points, step) })),
  };
}

/**
 * How late a host's figures may land in the store after their sample time: a collectd interval, the graph
 * recorder's period and the store's flush, with room to spare.
 */
export const LATENESS_SECONDS = 20;

/**
 * The start of the first bucket that is not complete at `now`: the one holding `now − LATENESS_SECONDS`. A bucket
 * still filling has only some of its samples (a pool's sum: only the hosts that reported so far; a mean: part of
 * the interval), so drawn as it is it shows a drop at "now" that is not there.
 */
export function partialFrom(now: number, step: number): number {
  return Math.floor((now - LATENESS_SECONDS) / step) * step;
}

/**
 * The points with a point of nulls where a line stops for longer than a bucket and two collectd intervals
 * (a host down, a counter reset that left no rate), so that graphs draw a gap and not a line across it.
 */
export function withGaps(points: GraphLine['points'], step: number): GraphLine['points'] {
  const longest = Math.max(step, 2 * RAW_STEP_SECONDS);
  const out: GraphLine['points'] = [];
  for (const [i, p] of points.entries()) {
    const next = points[i + 1];
    out.push(p);
    if (next && next[0] - p[0] > longest) out.push([p[0] + step, null, null]);
  }
  return out;
}

async function resolve(
  deps: GraphDeps,
  user: AuthUser,
  kind: 'host' | 'vm' | 'pool',
  id: number,
): Promise<Subjects> {
  const { db } = deps;
  if (kind === 'host') {
    const host = await hostForGraph(db, id);
    if (!host) throw notFound('host');
    await assertPool(db, user, host.pool_id, 'view', 'host');
    return { kind: 'host', names: [host.hostname], vcpus: 0, cpus: host.cpus };
  }
  if (kind === 'vm') {
    const vm = await vmForGraph(db, id);
    if (!vm) throw notFound('vm');
    await assertVm(db, user, vm, 'view');
    return { kind: 'vm', names: [vm.uuid], vcpus: vm.vcpus, cpus: 0 };
  }
  const pool = await poolForGraph(db, id);
  if (!pool) throw notFound('pool');
  await assertPool(db, user, pool.id, 'view');
  if (pool.kind === 'hardware') {
    const hosts = await hostsUnder(db, pool.id);
    return {
      kind: 'host',
      names: hosts.map((h) => h.hostname),
      vcpus: 0,
      cpus: hosts.reduce((n, h) => n + h.cpus, 0),
    };
  }
  const vms = await vmsOfPool(db, pool.id, await vmVisibilityFilter(db, user));
  return { kind: 'vm', names: vms.map((v) => v.uuid), vcpus: vms.reduce((n, v) => n + v.vcpus, 0), cpus: 0 };
}

/** Seconds since the epoch (decimals allowed) or an ISO 8601 date. */
function parseTime(value: string, field: string): number {
  const seconds = /^\d+(\.\d+)?$/.test(value) ? Number(value) : Date.parse(value) / 1000;
  if (!Number.isFinite(seconds)) {
    throw badRequest(`${field} must be seconds since the epoch or an ISO 8601 date`, { field });
  }
  return seconds;
}
