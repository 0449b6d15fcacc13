import type { Logger } from '../../lib/log.js';
import { Loop } from '../../lib/loop.js';
import type { Database } from '../../schema/db.js';
import type { AlertFeed, QuotaEnforcementEvent } from '../alerts/alert-feed.js';
import type { Clock } from '../alerts/alert-rule.js';
import { type AlertEntry, enqueueNotification } from '../alerts/notify/enqueue.js';
import { audit } from '../audit/audit.service.js';
import { ancestorChain } from '../quota/quota.repository.js';
import { RESOURCE_NAMES, type ResourceKey } from '../quota/quota.service.js';
import { ACTIVE_VM_STATES } from '../vms/vm-states.js';
import {
  type CandidateVm,
  deleteEnforcement,
  type EnforcementRow,
  enforcementRows,
  insertEnforcement,
  insertLog,
  latestActivation,
  type PoolPolicy,
  poolPolicies,
  recentlySuspended,
  tryLockEnforcer,
  updateEnforcement,
  vmsUnderQuota,
} from './enforcement.repository.js';
import { type EnforcementAction, queueSave, SUSPENDABLE_STATES } from './enforcement-action.js';
import { overLimits, type QuotaStatus, quotaStatuses } from './quota-status.js';

type Over = Partial<Record<ResourceKey, { used: number; limit: number }>>;

/** What suspending frees: storage stays counted in every state. */
const FREEABLE: readonly ResourceKey[] = ['vcpus', 'memoryMiB', 'nics', 'vms'];
/** A VM herd asked to suspend is not asked again this soon (its task may still be on its way). */
const RESUSPEND_AFTER_MS = 5 * 60_000;

export interface ReconcileResult {
  over: number;
  /** Quotas that came back under their limits this pass. */
  resolved: number;
  suspended: number[];
  blocked: number;
  /** false: another process was reconciling (this one left it to it). */
  ran: boolean;
}

export interface QuotaEnforcerOptions {
  db: Database;
  log: Logger;
  clock?: Clock;
  /** Default 15 s. */
  intervalMs?: number;
  /** Alerting's feed: enforcement events go to the dashboard (`feed.on('enforcement', …)`). */
  feed?: AlertFeed;
  /** How a VM is suspended; default: the task worker's `save`, queued as herd. */
  suspend?: EnforcementAction;
  /** false: no timer, the caller runs `reconcile()` (tests). Default true. */
  autoRun?: boolean;
}

export interface QuotaEnforcer {
  reconcile(): Promise<ReconcileResult>;
  stop(): Promise<void>;
}

/**
 * The quota reconciler. Each pass compares every quota with the usage the tables hold now (VM states as the
 * host monitor reports them from libvirt) and, for a quota found exceeded for longer than its pool's grace
 * period, applies the pool's `quota_policy`:
 * - `alert`: records it and notifies (the built-in quota rule pages too);
 * - `block`: sets `blocked`, which `assertNotBlocked` (quota-block.ts) turns into 409 for starts, resumes and
 *   restores under that quota, until usage is back under it;
 * - `suspend-newest`: saves (suspends to disk) the most recently started VMs under the quota, through the task
 *   worker, until the freed resources bring it under its limits; each one audited and notified.
 * One process reconciles at a time (advisory lock); every decision goes to quota_enforcement_log.
 */
export function startQuotaEnforcer(o: QuotaEnforcerOptions): QuotaEnforcer {
  const clock = o.clock ?? Date.now;
  const log = o.log.child({ part: 'quota-enforcer' });
  const suspend = o.suspend ?? queueSave;
  const state = { lastPassAt: undefined as number | undefined };
  const reconcile = () => reconcileOnce({ db: o.db, log, clock, feed: o.feed, suspend }, state);
  const loop = new Loop(o.intervalMs ?? 15_000, reconcile);
  if (o.autoRun ?? true) loop.start((err) => log.warn({ err }, 'quota reconciliation failed'));
  return { reconcile, stop: () => loop.stop() };
}

interface Deps {
  db: Database;
  log: Logger;
  clock: Clock;
  feed?: AlertFeed;
  suspend: EnforcementAction;
}

async function reconcileOnce(d: Deps, state: { lastPassAt?: number }): Promise<ReconcileResult> {
  const result: ReconcileResult = { over: 0, resolved: 0, suspended: [], blocked: 0, ran: false };
  const events: QuotaEnforcementEvent[] = [];
  await d.db.transaction().execute(async (trx) => {
    if (!(await tryLockEnforcer(trx))) return;
    result.ran = true;
    const now = d.clock();
    const statuses = await quotaStatuses(trx);
    const existing = new Map((await enforcementRows(trx)).map((r) => [key(r.pool_id, r.user_id), r]));
    const pools = await poolPolicies(trx, [
      ...new Set([...statuses.map((s) => s.poolId), ...[...existing.values()].map((r) => r.pool_id)]),
    ]);
    const ctx: PassContext = { ...d, trx, now, events, pools, lastPassAt: state.lastPassAt };
    state.lastPassAt = now;

    for (const status of statuses) {
      const over = overLimits(status);
      if (!Object.keys(over).length) continue;
      result.over++;
      const k = key(status.poolId, status.userId);
      const row = existing.get(k);
      existing.delete(k);
      const outcome = await enforce(ctx, status, over, row);
      result.suspended.push(...outcome.suspended);
      if (outcome.blocked) result.blocked++;
    }
    // Quotas no longer exceeded (usage went down, limit raised, quota removed): lift what was done.
    for (const row of existing.values()) {
      result.resolved++;
      await resolve(ctx, row);
    }
    if (events.length && d.feed) await d.feed.notifyOthers(trx, 'enforcement', events);
  });
  d.feed?.publish('enforcement', events);
  return result;
}

interface PassContext extends Deps {
  trx: Database;
  now: number;
  events: QuotaEnforcementEvent[];
  pools: Map<number, PoolPolicy>;
  /** When this process's previous pass ran, if it did. */
  lastPassAt?: number;
}

async function enforce(
  c: PassContext,
  status: QuotaStatus,
  over: Over,
  row: EnforcementRow | undefined,
): Promise<{ suspended: number[]; blocked: boolean }> {
  const pool = c.pools.get(status.poolId)!;
  const q = { poolId: status.poolId, userId: status.userId };
  const overText = describeOver(over);
  const graceMs = pool.quota_grace_seconds * 1000;
  if (!row) {
    const reason = `${whose(q)} over quota: ${overText}; policy ${pool.quota_policy} applies after ${pool.quota_grace_seconds} s`;
    row = {
      pool_id: q.poolId,
      user_id: q.userId,
      over: over as EnforcementRow['over'],
      over_since: new Date(await overSince(c, q)),
      policy: pool.quota_policy,
      action: 'none',
      blocked: false,
      reason,
      checked_at: new Date(c.now),
    };
    await insertEnforcement(c.trx, { ...row, over: JSON.stringify(over) });
    await record(c, q, 'over', reason, { over });
  } else {
    await updateEnforcement(c.trx, q, {
      over: JSON.stringify(over),
      checked_at: new Date(c.now),
      policy: pool.quota_policy,
    });
  }

  const unblock = async (why: string) => {
    if (!row!.blocked) return;
    await updateEnforcement(c.trx, q, { blocked: false });
    await record(c, q, 'unblock', why, {});
  };
  if (c.now - row.over_since.getTime() < graceMs) return { suspended: [], blocked: row.blocked };

  switch (pool.quota_policy) {
    case 'alert': {
      await unblock('the pool policy is now alert');
      if (row.action === 'alert') return { suspended: [], blocked: false };
      const reason = `${whose(q)} over quota for more than ${pool.quota_grace_seconds} s: ${overText}; policy alert: nothing is stopped`;
      await updateEnforcement(c.trx, q, { action: 'alert', reason });
      await record(c, q, 'alert', reason, { over }, 'warning');
      return { suspended: [], blocked: false };
    }
    case 'block': {
      if (row.blocked) return { suspended: [], blocked: true };
      const reason = `${whose(q)} over quota for more than ${pool.quota_grace_seconds} s: ${overText}; starts, resumes and restores are refused until back under quota`;
      await updateEnforcement(c.trx, q, { action: 'block', blocked: true, reason });
      await record(c, q, 'block', reason, { over }, 'critical');
      await audit(c.trx, {
        userId: null,
        action: 'quota.block',
        entityType: 'pool',
        entityId: q.poolId,
        after: { userId: q.userId, over },
      });
      return { suspended: [], blocked: true };
    }
    case 'suspend-newest': {
      await unblock('the pool policy is now suspend-newest');
      return { suspended: await suspendNewest(c, q, over, pool), blocked: false };
    }
  }
}

/**
 * When the quota went over: the moment the latest VM under it became active, if that was after the previous pass
 * (so the grace period runs from when herd learnt of the VM, not from when a pass noticed); otherwise (a lowered
 * quota, herd's first pass) now.
 */
async function overSince(c: PassContext, q: Quota): Promise<number> {
  if (c.lastPassAt === undefined) return c.now;
  const changed = (await latestActivation(c.trx, q, ACTIVE_VM_STATES))?.getTime();
  return changed !== undefined && changed > c.lastPassAt ? Math.min(changed, c.now) : c.now;
}

/** Saves the most recently started VMs until what they free brings every freeable resource under its limit. */
async function suspendNewest(c: PassContext, q: Quota, over: Over, pool: PoolPolicy): Promise<number[]> {
  const freeable = FREEABLE.filter((k) => over[k]);
  if (!freeable.length) {
    const reason = `${whose(q)} over quota: ${describeOver(over)}; suspending VMs frees no storage, so nothing is suspended`;
    await updateEnforcement(c.trx, q, { action: 'alert', reason });
    return [];
  }
  // What is already on its way out counts as freed.
  const excess = Object.fromEntries(freeable.map((k) => [k, over[k]!.used - over[k]!.limit])) as Record<
    ResourceKey,
    number
  >;
  for (const vm of await vmsUnderQuota(c.trx, q, ['saving'])) subtract(excess, vm);
  const candidates = await vmsUnderQuota(c.trx, q, SUSPENDABLE_STATES);
  const recent = await recentlySuspended(
    c.trx,
    candidates.map((v) => v.id),
    new Date(c.now - RESUSPEND_AFTER_MS),
  );
  const suspended: number[] = [];
  for (const vm of candidates) {
    if (freeable.every((k) => excess[k] <= 1e-9)) break;
    if (recent.has(vm.id)) continue;
    if (!freeable.some((k) => resourcesOf(vm)[k] > 0 && excess[k] > 1e-9)) continue;
    const reason =
      `${whose(q)} over quota for more than ${pool.quota_grace_seconds} s (${describeOver(over)}): ` +
      `VM ${vm.name} (${vm.id}), the most recently started, is suspended to disk`;
    const taskId = await c.suspend(c.trx, vm, reason);
    if (taskId === null) continue;
    subtract(excess, vm);
    suspended.push(vm.id);
    await record(c, q, 'suspend', reason, { over, taskId }, 'critical', { vmId: vm.id, taskId });
    await audit(c.trx, {
      userId: null,
      action: 'vm.save',
      entityType: 'vm',
      entityId: vm.id,
      before: { state: vm.state },
      after: { state: 'saving', taskId, reason: 'quota enforcement (suspend-newest)' },
    });
  }
  if (suspended.length) {
    await updateEnforcement(c.trx, q, {
      action: 'suspend',
      reason: `${whose(q)} over quota (${describeOver(over)}): suspended VMs ${suspended.join(', ')}`,
    });
  }
  return suspended;
}

async function resolve(c: PassContext, row: EnforcementRow): Promise<void> {
  const q = { poolId: row.pool_id, userId: row.user_id };
  await deleteEnforcement(c.trx, q);
  if (row.blocked) await record(c, q, 'unblock', `${whose(q)} back under quota: starts allowed again`, {});
  await record(
    c,
    q,
    'resolved',
    `${whose(q)} back under quota`,
    {},
    row.action === 'none' ? undefined : 'warning',
  );
}

interface Quota {
  poolId: number;
  userId: number | null;
}

/**
 * Logs a decision, announces it on the feed and, with a severity, notifies the channels covering the pool (one
 * notification group per pool, sent at once).
 */
async function record(
  c: PassContext,
  q: Quota,
  action: 'over' | 'alert' | 'block' | 'unblock' | 'suspend' | 'resolved',
  reason: string,
  details: Record<string, unknown>,
  severity?: 'warning' | 'critical',
  vm?: { vmId: number; taskId: number },
): Promise<void> {
  const at = new Date(c.now);
  await insertLog(c.trx, {
    at,
    pool_id: q.poolId,
    user_id: q.userId,
    action,
    vm_id: vm?.vmId ?? null,
    task_id: vm?.taskId ?? null,
    reason,
    details: JSON.stringify(details),
  });
  c.events.push({ poolId: q.poolId, userId: q.userId, action, reason, vmId: vm?.vmId ?? null });
  c.log.info({ pool: q.poolId, user: q.userId, action, vm: vm?.vmId }, reason);
  if (!severity) return;
  const pool = c.pools.get(q.poolId);
  const entry: AlertEntry = {
    instanceId: null,
    ruleId: null,
    kind: 'enforcement',
    status: action === 'resolved' ? 'resolved' : 'firing',
    severity,
    labels: {
      alertname: 'Quota enforcement',
      severity,
      action,
      pool: pool?.name ?? String(q.poolId),
      pool_id: String(q.poolId),
      ...(q.userId === null ? {} : { user_id: String(q.userId) }),
      ...(vm ? { vm_id: String(vm.vmId) } : {}),
    },
    summary: reason,
    value: null,
    startsAt: at.toISOString(),
    endsAt: action === 'resolved' ? at.toISOString() : null,
    at: at.toISOString(),
  };
  await enqueueNotification(c.trx, {
    ruleId: null,
    poolChain: (await ancestorChain(c.trx, q.poolId)).map((p) => p.id),
    channelIds: null,
    severity,
    groupKey: `quota-enforcement|pool:${q.poolId}`,
    entries: [entry],
    now: c.now,
    groupWaitSeconds: 0,
  });
}

function resourcesOf(vm: CandidateVm): Record<ResourceKey, number> {
  return { vcpus: vm.vcpus, memoryMiB: vm.memory_mib, nics: vm.nics, vms: 1, storageGiB: 0 };
}

function subtract(excess: Record<ResourceKey, number>, vm: CandidateVm): void {
  const r = resourcesOf(vm);
  for (const k of Object.keys(excess) as ResourceKey[]) excess[k] -= r[k];
}

function describeOver(over: Over): string {
  return Object.entries(over)
    .map(([k, v]) => `${RESOURCE_NAMES[k as ResourceKey]} ${round(v!.used)}/${round(v!.limit)}`)
    .join(', ');
}

function whose(q: Quota): string {
  return q.userId === null ? `pool ${q.poolId} (total)` : `user ${q.userId} in pool ${q.poolId}`;
}

const key = (poolId: number, userId: number | null) => `${poolId}:${userId ?? '-'}`;
const round = (v: number) => Math.round(v * 100) / 100;
