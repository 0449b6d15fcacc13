import type { Database } from '../../schema/db.js';
import { assertPool, visiblePoolIds } from '../access/access.service.js';
import { audit } from '../audit/audit.service.js';
import type { AuthUser } from '../auth/auth-user.js';
import { badRequest, conflict, forbidden, notFound } from '../http/errors.js';
import { type AlertRule, type AlertRuleRow, metricProblem, toRule } from './alert-rule.js';
import {
  channelsByIds,
  deleteRule,
  insertRule,
  listRules,
  type RuleFilter,
  ruleById,
  updateRule,
} from './alerts.repository.js';

type Settings = Partial<Omit<AlertRule, 'id' | 'builtin' | 'scope' | 'poolId' | 'hostId'>>;
export type CreateRuleBody = Settings &
  Pick<AlertRule, 'name' | 'scope' | 'metric' | 'condition'> & { poolId?: number; hostId?: number };
export type PatchRuleBody = Settings;

/**
 * Who may do what with rules: anyone signed in sees global rules (they explain the alerts they see), changing
 * them takes the super-admin; a pool's rules (or a host's, through its pool) are seen with `view` and changed
 * with `modify` on that pool.
 */
async function assertRule(
  db: Database,
  user: AuthUser,
  row: Pick<AlertRuleRow, 'scope' | 'pool_id' | 'host_id'>,
  need: 'view' | 'modify',
) {
  if (row.scope === 'global') {
    if (need === 'modify' && !user.isSuperAdmin)
      throw forbidden('global alert rules are changed by the super-admin');
    return;
  }
  const poolId = row.pool_id ?? (await hostPool(db, row.host_id!));
  if (poolId === undefined) throw notFound('alert rule');
  await assertPool(db, user, poolId, need, 'alert rule');
}

async function hostPool(db: Database, hostId: number): Promise<number | undefined> {
  return (await db.selectFrom('hosts').select('pool_id').where('id', '=', hostId).executeTakeFirst())
    ?.pool_id;
}

export async function listAlertRules(
  db: Database,
  user: AuthUser,
  filter: Omit<RuleFilter, 'pools'>,
  page: { limit: number; offset: number },
) {
  const { items, total } = await listRules(db, { ...filter, pools: await visiblePoolIds(db, user) }, page);
  return { items: items.map(toRule), total };
}

export async function getAlertRule(db: Database, user: AuthUser, id: number): Promise<AlertRule> {
  const row = await ruleById(db, id);
  if (!row) throw notFound('alert rule');
  await assertRule(db, user, row, 'view').catch((err) => {
    throw err.statusCode === 403 ? notFound('alert rule') : err;
  });
  return toRule(row);
}

export async function createAlertRule(
  db: Database,
  user: AuthUser,
  body: CreateRuleBody,
): Promise<AlertRule> {
  const scope = body.scope;
  if (scope === 'pool' && body.poolId === undefined)
    throw badRequest('poolId: required for a pool rule', { field: 'poolId' });
  if (scope === 'host' && body.hostId === undefined)
    throw badRequest('hostId: required for a host rule', { field: 'hostId' });
  if (scope !== 'pool' && body.poolId !== undefined)
    throw badRequest(`poolId: only for a pool rule`, { field: 'poolId' });
  if (scope !== 'host' && body.hostId !== undefined)
    throw badRequest(`hostId: only for a host rule`, { field: 'hostId' });
  if (scope === 'host' && (await hostPool(db, body.hostId!)) === undefined) throw notFound('host');
  const target = { scope, pool_id: body.poolId ?? null, host_id: body.hostId ?? null };
  await assertRule(db, user, target, 'modify');
  const merged = { ...DEFAULTS, ...body, aggregate: body.aggregate ?? null };
  await validate(db, user, merged, scope);
  return db.transaction().execute(async (trx) => {
    const id = await insertRule(trx, { ...target, ...columns(merged), created_by: user.id });
    const rule = toRule((await ruleById(trx, id))!);
    await audit(trx, {
      userId: user.id,
      action: 'alert_rule.create',
      entityType: 'alert_rule',
      entityId: id,
      after: rule,
    });
    return rule;
  });
}

export async function patchAlertRule(
  db: Database,
  user: AuthUser,
  id: number,
  body: PatchRuleBody,
): Promise<AlertRule> {
  const before = await getAlertRule(db, user, id);
  await assertRule(
    db,
    user,
    { scope: before.scope, pool_id: before.poolId, host_id: before.hostId },
    'modify',
  );
  const merged = { ...before, ...body };
  await validate(db, user, merged, before.scope);
  return db.transaction().execute(async (trx) => {
    const row = await updateRule(trx, id, columns(body));
    if (!row) throw notFound('alert rule');
    const after = toRule(row);
    await audit(trx, {
      userId: user.id,
      action: 'alert_rule.update',
      entityType: 'alert_rule',
      entityId: id,
      before,
      after,
    });
    return after;
  });
}

export async function deleteAlertRule(db: Database, user: AuthUser, id: number): Promise<void> {
  const before = await getAlertRule(db, user, id);
  await assertRule(
    db,
    user,
    { scope: before.scope, pool_id: before.poolId, host_id: before.hostId },
    'modify',
  );
  if (before.builtin)
    throw conflict('builtin_rule', 'built-in rules cannot be deleted; disable it instead (enabled: false)');
  await db.transaction().execute(async (trx) => {
    await deleteRule(trx, id);
    await audit(trx, {
      userId: user.id,
      action: 'alert_rule.delete',
      entityType: 'alert_rule',
      entityId: id,
      before,
    });
  });
}

const DEFAULTS: Settings = {
  description: '',
  enabled: true,
  threshold: null,
  windowSeconds: 0,
  windowFunction: 'last',
  pendingSeconds: 0,
  keepFiringSeconds: 0,
  nodataPolicy: 'nodata',
  errorPolicy: 'error',
  severity: 'warning',
  labels: {},
  groupWaitSeconds: 30,
  repeatIntervalSeconds: 14_400,
  channelIds: null,
};

async function validate(db: Database, user: AuthUser, r: Settings, scope: AlertRule['scope']): Promise<void> {
  const problem = metricProblem(r.metric!, scope);
  if (problem) throw badRequest(problem, { field: problem.split(':')[0] });
  if (r.condition !== 'absent' && (r.threshold === null || r.threshold === undefined)) {
    throw badRequest(`threshold: required when the condition is ${r.condition}`, { field: 'threshold' });
  }
  if (r.aggregate && scope !== 'pool')
    throw badRequest('aggregate: only for a pool rule', { field: 'aggregate' });
  if (r.aggregate && r.metric!.source === 'quota')
    throw badRequest('aggregate: quota rules are per limit', { field: 'aggregate' });
  if (r.aggregate && r.metric!.source === 'forecast')
    throw badRequest('aggregate: forecast rules are per pool or quota', { field: 'aggregate' });
  if (r.channelIds?.length) {
    const channels = await channelsByIds(db, [...new Set(r.channelIds)]);
    const visible = await visiblePoolIds(db, user);
    const seen = (c: { pool_id: number | null }) =>
      visible === 'all' || (c.pool_id !== null && visible.includes(c.pool_id));
    const missing = r.channelIds.find((id) => !channels.some((c) => c.id === id && seen(c)));
    if (missing !== undefined)
      throw badRequest(`channelIds: no notification channel ${missing}`, { field: 'channelIds' });
  }
}

function columns(r: Settings) {
  const json = (v: unknown) => (v === undefined ? undefined : JSON.stringify(v));
  return {
    name: r.name,
    description: r.description,
    enabled: r.enabled,
    aggregate: r.aggregate,
    metric: json(r.metric),
    condition: r.condition,
    threshold: r.threshold,
    window_seconds: r.windowSeconds,
    window_function: r.windowFunction,
    pending_seconds: r.pendingSeconds,
    keep_firing_seconds: r.keepFiringSeconds,
    nodata_policy: r.nodataPolicy,
    error_policy: r.errorPolicy,
    severity: r.severity,
    labels: json(r.labels),
    group_wait_seconds: r.groupWaitSeconds,
    repeat_interval_seconds: r.repeatIntervalSeconds,
    channel_ids: r.channelIds,
  } as { name: string; metric: string; condition: AlertRule['condition'] } & Record<string, any>;
}
