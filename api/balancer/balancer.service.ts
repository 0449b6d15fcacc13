import type { GuestLiveSummary, HostLiveSummary } from '../../ingest/live-view.js';
import type { Logger } from '../../lib/log.js';
import type { Database } from '../../schema/db.js';
import { assertPool } from '../access/access.service.js';
import { type BalancerMoveEvent, notifyAll } from '../alerts/alert-feed.js';
import { audit } from '../audit/audit.service.js';
import { findUserById } from '../auth/auth.repository.js';
import type { AuthUser } from '../auth/auth-user.js';
import type { HostConnections } from '../hosts/driver/index.js';
import { conflict, HttpError, notFound } from '../http/errors.js';
import { LIVE_MAX_AGE_INTERVALS } from '../placement/live-usage.js';
import { effectiveLimit } from '../vms/limits.js';
import { requestVmAction } from '../vms/vm-actions.service.js';
import {
  activeBalancerPools,
  allHosts,
  type HardwarePoolBalancer,
  hardwarePool,
  insertSamples,
  lastSettingsAuthor,
  migrationHistory,
  poolHosts,
  pruneSamples,
  samplesSince,
  tryLockPool,
  vmsOnHosts,
} from './balancer.repository.js';
import {
  type BalancePlan,
  type BalancerHost,
  type BalancerVm,
  planBalance,
  type Recommendation,
} from './plan.js';
import { effectiveSettings } from './settings.js';

/** Samples are kept this long: twice the longest window a pool may set (settings.ts). */
const KEEP_SAMPLES_MS = 2 * 3600_000;

/** The live view as the balancer reads it (ingest/live-view.ts `LiveReader`: the shared view in a worker). */
export interface BalancerLiveSource {
  hostSummary(hostname: string): HostLiveSummary | undefined;
  guestSummary(uuid: string): GuestLiveSummary | undefined;
}

export interface BalancerDeps {
  db: Database;
  liveView?: BalancerLiveSource;
  log?: Logger;
  hostConnections?: HostConnections;
}

/** Figures no older than LIVE_MAX_AGE_INTERVALS collectd intervals, as placement trusts them. */
function fresh<T extends { lastSeen: number; interval: number }>(
  s: T | undefined,
  now: number,
): T | undefined {
  if (!s) return undefined;
  return now - s.lastSeen <= LIVE_MAX_AGE_INTERVALS * Math.max(s.interval, 1) * 1000 ? s : undefined;
}

/**
 * Records every host's latest live CPU and memory (one row per host and collectd arrival) for the balancer's
 * windows, and forgets samples older than KEEP_SAMPLES_MS. Any process with the shared live view may do it: a
 * sample two processes both write is stored once.
 */
export async function recordSamples(deps: BalancerDeps, now: number): Promise<number> {
  const view = deps.liveView;
  if (!view) return 0;
  const rows = [];
  for (const h of await allHosts(deps.db)) {
    const s = fresh(view.hostSummary(h.hostname), now);
    if (s?.cpuBusyPercent === undefined) continue;
    rows.push({
      hostId: h.id,
      at: new Date(s.lastSeen),
      cpuPercent: s.cpuBusyPercent,
      memoryUsedMiB: s.memoryUsedMiB === undefined ? null : Math.round(s.memoryUsedMiB),
    });
  }
  await insertSamples(deps.db, rows);
  await pruneSamples(deps.db, new Date(now - KEEP_SAMPLES_MS));
  return rows.length;
}

export interface PoolPlan {
  pool: HardwarePoolBalancer;
  plan: BalancePlan;
  /** The VMs the plan speaks of, by id (name, VM pool, owner). */
  vms: Map<number, { name: string; poolId: number }>;
}

/** The pool as the balancer sees it now: hosts with their window of samples, VMs with their live use. */
export async function planPool(
  deps: BalancerDeps,
  pool: HardwarePoolBalancer,
  now: number,
): Promise<PoolPlan> {
  const settings = effectiveSettings(pool.balancer);
  const candidates = await poolHosts(deps.db, pool.id);
  const hostIds = candidates.map((h) => h.id);
  const windowMs = settings.windowSeconds * 1000;
  const [samples, vmRows, history] = await Promise.all([
    samplesSince(deps.db, hostIds, new Date(now - 2 * windowMs)),
    vmsOnHosts(deps.db, hostIds),
    migrationHistory(
      deps.db,
      new Date(
        now -
          1000 *
            Math.max(settings.coolDownSeconds, settings.maxFailureBackoffSeconds, settings.windowSeconds),
      ),
    ),
  ]);
  const byHost = new Map<number, BalancerHost['samples'][number][]>();
  for (const s of samples) {
    const list = byHost.get(s.hostId) ?? [];
    list.push({ at: s.at.getTime(), cpuPercent: s.cpuPercent, memoryUsedMiB: s.memoryUsedMiB ?? undefined });
    byHost.set(s.hostId, list);
  }
  const hosts: BalancerHost[] = candidates.map((h) => ({
    ...h,
    samples: byHost.get(h.id) ?? [],
    lastMigrationAt: history.hosts.get(h.id),
  }));
  const vms: BalancerVm[] = vmRows.map((v) => {
    const live = fresh(deps.liveView?.guestSummary(v.uuid), now);
    const past = history.vms.get(v.id);
    return {
      id: v.id,
      name: v.name,
      hostId: v.host_id,
      vcpus: v.vcpus,
      memoryMiB: v.memory_mib,
      cpuCores: live?.cpuPercent === undefined ? undefined : live.cpuPercent / 100,
      memoryUsedMiB: live?.memoryUsedMiB,
      pinned: v.pinned,
      cpuLimitPercent: effectiveLimit(v.cpu_limit_percent, v.pool_cpu_limit_percent),
      lastMovedAt: past?.lastMovedAt,
      failedMigrations: past?.failures,
      lastFailedMigrationAt: past?.lastFailedAt,
      migratingToHostId: v.state === 'migrating' ? v.migration_host_id : null,
    };
  });
  const plan = planBalance({ hosts, vms, settings, now });
  return { pool, plan, vms: new Map(vmRows.map((v) => [v.id, { name: v.name, poolId: v.pool_id }])) };
}

function recommendationAnswer(r: Recommendation) {
  return {
    vmId: r.vmId,
    fromHostId: r.fromHostId,
    toHostId: r.toHostId,
    reason: r.reason,
    kind: r.kind,
    imbalanceBefore: r.imbalanceBefore,
    imbalanceAfter: r.imbalanceAfter,
  };
}

async function adminPool(db: Database, user: AuthUser, poolId: number): Promise<HardwarePoolBalancer> {
  await assertPool(db, user, poolId, 'modify');
  const pool = await hardwarePool(db, poolId);
  if (!pool) throw conflict('not_hardware_pool', 'only hardware pools have a balancer');
  return pool;
}

/** `GET /api/v1/pools/:id/balance`: the plan now (in mode off: the dry run), for the pool's admins. */
export async function getBalance(deps: BalancerDeps, user: AuthUser, poolId: number, now = Date.now()) {
  const { plan } = await planPool(deps, await adminPool(deps.db, user, poolId), now);
  return {
    poolId,
    mode: plan.mode,
    policy: plan.policy,
    imbalance: plan.imbalance,
    imbalanceAfter: plan.imbalanceAfter,
    recommendations: plan.recommendations.map(recommendationAnswer),
    emptyHosts: plan.emptyHosts,
    notes: plan.notes,
    migrationsInFlight: plan.migrationsInFlight,
  };
}

/** The explanation of a move made (the plan's reason is written as a recommendation: "move vm …"). */
const madeReason = (reason: string) => reason.replace(/^move /, 'moved ');

/**
 * Starts one recommended move through the VM migrate action (quota, access and room checked there as for any
 * migration; the reason in the task's args), then records it in the audit log and the live feed.
 */
async function startMove(
  deps: BalancerDeps,
  user: AuthUser,
  pp: PoolPlan,
  r: Recommendation,
  automatic: boolean,
): Promise<number> {
  const reason = madeReason(r.reason);
  const { taskId } = await requestVmAction(deps, user, r.vmId, {
    action: 'migrate',
    hostId: r.toHostId,
    reason,
  });
  const event: BalancerMoveEvent = {
    poolId: pp.pool.id,
    vmId: r.vmId,
    vmName: pp.vms.get(r.vmId)?.name ?? String(r.vmId),
    fromHostId: r.fromHostId,
    toHostId: r.toHostId,
    taskId,
    reason,
    automatic,
    userId: automatic ? null : user.id,
  };
  await deps.db.transaction().execute(async (trx) => {
    await audit(trx, {
      userId: automatic ? null : user.id,
      action: automatic ? 'balancer.move' : 'balancer.apply',
      entityType: 'vm',
      entityId: r.vmId,
      before: { hostId: r.fromHostId, imbalance: r.imbalanceBefore },
      after: { hostId: r.toHostId, imbalance: r.imbalanceAfter, taskId, reason, onBehalfOf: user.id },
    });
    await notifyAll(trx, 'balancer', event);
  });
  return taskId;
}

/** `POST /api/v1/pools/:id/balance/apply {vmId}`: carries out the move recommended now for the VM (mode recommend). */
export async function applyRecommendation(
  deps: BalancerDeps,
  user: AuthUser,
  poolId: number,
  vmId: number,
  now = Date.now(),
): Promise<{ taskId: number; reason: string }> {
  const pool = await adminPool(deps.db, user, poolId);
  const mode = effectiveSettings(pool.balancer).mode;
  if (mode !== 'recommend')
    throw conflict('balancer_mode', `the pool's balancer is ${mode}: apply is for mode recommend`, { mode });
  const pp = await planPool(deps, pool, now);
  const r = pp.plan.recommendations.find((x) => x.vmId === vmId);
  if (!r) {
    if (!pp.vms.has(vmId)) throw notFound('vm');
    throw conflict('not_recommended', `no move of VM ${vmId} is recommended now`, { notes: pp.plan.notes });
  }
  const taskId = await startMove(deps, user, pp, r, false);
  return { taskId, reason: madeReason(r.reason) };
}

export interface CycleResult {
  sampled: number;
  pools: Array<{
    poolId: number;
    /** false: another process holds the pool this cycle. */
    ran: boolean;
    plan?: BalancePlan;
    started: Array<{ vmId: number; taskId: number; reason: string }>;
    refused: Array<{ vmId: number; error: string }>;
  }>;
}

/**
 * One balancer cycle: records the hosts' samples, then plans every pool whose balancer is on, each under a
 * PostgreSQL advisory lock (one process per pool at a time; another finding it taken skips it), and in mode
 * `automatic` starts the plan's moves through the migrate action, on behalf of the pool admin who last set the
 * balancer (their access checked as for any migration; none left: nothing moves).
 */
export async function balanceOnce(deps: BalancerDeps, now: number): Promise<CycleResult> {
  const result: CycleResult = { sampled: await recordSamples(deps, now), pools: [] };
  for (const pool of await activeBalancerPools(deps.db)) {
    const entry: CycleResult['pools'][number] = { poolId: pool.id, ran: false, started: [], refused: [] };
    result.pools.push(entry);
    await deps.db.transaction().execute(async (trx) => {
      if (!(await tryLockPool(trx, pool.id))) return;
      entry.ran = true;
      const pp = await planPool({ ...deps, db: trx }, pool, now);
      entry.plan = pp.plan;
      if (!pp.plan.execute || !pp.plan.recommendations.length) return;
      const actor = await balancerActor(deps.db, pool.id);
      if (!actor) {
        pp.plan.notes.push('no active pool admin set the balancer: nothing is moved');
        return;
      }
      for (const r of pp.plan.recommendations) {
        try {
          const taskId = await startMove(deps, actor, pp, r, true);
          entry.started.push({ vmId: r.vmId, taskId, reason: madeReason(r.reason) });
        } catch (err) {
          const error = err instanceof HttpError ? err.message : (err as Error).message;
          entry.refused.push({ vmId: r.vmId, error });
          deps.log?.warn({ poolId: pool.id, vmId: r.vmId, err: error }, 'balancer: migration refused');
        }
      }
    });
  }
  return result;
}

/** Who automatic moves are made for: the user who last changed the pool's balancer settings, if still active. */
async function balancerActor(db: Database, poolId: number): Promise<AuthUser | undefined> {
  const id = await lastSettingsAuthor(db, poolId);
  const u = id === null ? undefined : await findUserById(db, id);
  if (!u || u.disabled) return undefined;
  return { id: u.id, username: u.username, isSuperAdmin: u.is_super_admin };
}
