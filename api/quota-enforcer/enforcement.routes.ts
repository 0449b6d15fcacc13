import type { FastifyInstance } from 'fastify';
import type { Database } from '../../schema/db.js';
import { assertPool } from '../access/access.service.js';
import type { AppDeps } from '../app.js';
import type { AuthUser } from '../auth/auth-user.js';
import { errorResponses, idParam } from '../http/schemas.js';
import { ancestorChain } from '../quota/quota.repository.js';
import { enforcementOn, logOf, poolPolicies } from './enforcement.repository.js';

const figures = {
  type: 'object',
  additionalProperties: {
    type: 'object',
    properties: { used: { type: 'number' }, limit: { type: 'number' } },
  },
} as const;
const nullableInt = { type: ['integer', 'null'] } as const;
const nullableString = { type: ['string', 'null'] } as const;

const enforcementSchema = {
  type: 'object',
  properties: {
    poolId: { type: 'integer' },
    policy: { type: 'string', enum: ['alert', 'block', 'suspend-newest'] },
    graceSeconds: { type: 'integer' },
    overQuota: { type: 'boolean', description: 'a quota of this pool, or of an ancestor, is exceeded now' },
    blocked: {
      type: 'boolean',
      description: 'starts, resumes and restores are refused for some users or all',
    },
    quotas: {
      type: 'array',
      description: 'exceeded quotas that apply in this pool (its own and its ancestors)',
      items: {
        type: 'object',
        properties: {
          poolId: { type: 'integer' },
          userId: nullableInt,
          username: nullableString,
          over: figures,
          overSince: { type: 'string', format: 'date-time' },
          graceEndsAt: { type: 'string', format: 'date-time' },
          policy: { type: 'string' },
          action: { type: 'string', enum: ['none', 'alert', 'block', 'suspend'] },
          blocked: { type: 'boolean' },
          reason: { type: 'string' },
          checkedAt: { type: 'string', format: 'date-time' },
        },
      },
    },
    actions: {
      type: 'array',
      description: 'recent decisions on quotas of this pool, newest first',
      items: {
        type: 'object',
        properties: {
          at: { type: 'string', format: 'date-time' },
          action: { type: 'string' },
          userId: nullableInt,
          username: nullableString,
          vmId: nullableInt,
          vmName: nullableString,
          taskId: nullableInt,
          reason: { type: 'string' },
        },
      },
    },
  },
} as const;

/** `GET /api/v1/pools/:id/enforcement`: over-quota state, what herd did about it and why, for the pool page. */
export function quotaEnforcementRoutes(app: FastifyInstance, { db }: AppDeps): void {
  app.get<{ Params: { id: number } }>(
    '/api/v1/pools/:id/enforcement',
    {
      schema: {
        tags: ['quotas'],
        summary: 'Quota enforcement of a pool: exceeded quotas, actions taken and why',
        params: idParam,
        response: { 200: enforcementSchema, ...errorResponses },
      },
    },
    async (request) => poolEnforcement(db, request.user, request.params.id),
  );
}

export async function poolEnforcement(db: Database, user: AuthUser, poolId: number) {
  await assertPool(db, user, poolId, 'view');
  const chain = (await ancestorChain(db, poolId)).map((p) => p.id);
  const [rows, policies, log] = await Promise.all([
    enforcementOn(db, chain),
    poolPolicies(db, chain),
    logOf(db, poolId, 50),
  ]);
  const own = policies.get(poolId)!;
  return {
    poolId,
    policy: own.quota_policy,
    graceSeconds: own.quota_grace_seconds,
    overQuota: rows.length > 0,
    blocked: rows.some((r) => r.blocked),
    quotas: rows.map((r) => ({
      poolId: r.pool_id,
      userId: r.user_id,
      username: r.username,
      over: r.over,
      overSince: r.over_since.toISOString(),
      graceEndsAt: new Date(
        r.over_since.getTime() + (policies.get(r.pool_id)?.quota_grace_seconds ?? 0) * 1000,
      ).toISOString(),
      policy: r.policy,
      action: r.action,
      blocked: r.blocked,
      reason: r.reason,
      checkedAt: r.checked_at.toISOString(),
    })),
    actions: log.map((l) => ({
      at: l.at.toISOString(),
      action: l.action,
      userId: l.user_id,
      username: l.username,
      vmId: l.vm_id,
      vmName: l.vm_name,
      taskId: l.task_id,
      reason: l.reason,
    })),
  };
}
