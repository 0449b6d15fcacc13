import type { Database } from '../../schema/db.js';
import { HttpError } from '../http/errors.js';
import { ancestorChain } from '../quota/quota.repository.js';
import { RESOURCE_NAMES, type ResourceKey } from '../quota/quota.service.js';
import { blockingRows, type EnforcementRow } from './enforcement.repository.js';

/**
 * The quota that blocks a user's new starts, resumes and restores in a VM pool, or null: a row of the pool or of
 * an ancestor (the quotas that apply there), the user's own or a pool total, that the reconciler blocked under
 * the `block` policy because it stayed over its limit past the grace period.
 */
export async function isBlocked(
  db: Database,
  poolId: number,
  userId: number,
): Promise<EnforcementRow | null> {
  const chain = (await ancestorChain(db, poolId)).map((p) => p.id);
  const rows = await blockingRows(db, chain, userId);
  return rows[0] ?? null;
}

/**
 * Throws 409 `quota_exceeded` (with `blocked: true`) when `isBlocked`. For the VM start, resume and restore
 * paths: call it in the request's transaction, after `claim()`.
 */
export async function assertNotBlocked(
  db: Database,
  request: { poolId: number; userId: number },
): Promise<void> {
  const row = await isBlocked(db, request.poolId, request.userId);
  if (!row) return;
  const [resource, figures] = (Object.entries(row.over)[0] ?? ['vms', { used: 0, limit: 0 }]) as [
    ResourceKey,
    { used: number; limit: number },
  ];
  throw new HttpError(409, 'quota_exceeded', `blocked until back under quota: ${row.reason}`, {
    resource: RESOURCE_NAMES[resource] ?? resource,
    limit: figures.limit,
    used: figures.used,
    scope: row.user_id === null ? 'pool' : 'user',
    poolId: row.pool_id,
    ...(row.user_id === null ? {} : { userId: row.user_id }),
    blocked: true,
    since: row.over_since.toISOString(),
  });
}
