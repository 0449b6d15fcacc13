import type { Database } from '../../schema/db.js';
import { quotaRows, subtreeUsageByOwner, type UsageRow } from '../quota/quota.repository.js';
import { RESOURCE_KEYS, type ResourceKey, type Resources } from '../quota/quota.service.js';

/** One quota row with the usage it limits now (the quota engine's own counting, see quota.service.ts). */
export interface QuotaStatus {
  poolId: number;
  /** null: the pool total. */
  userId: number | null;
  used: Resources;
  limits: { [K in ResourceKey]: number | null };
}

const ROW_COLUMN = {
  vcpus: 'vcpus',
  memoryMiB: 'memory_mib',
  storageGiB: 'storage_gib',
  nics: 'nics',
  vms: 'vms',
} as const satisfies Record<ResourceKey, keyof UsageRow>;

/** Every quota row (of `poolIds` if given) with its usage. */
export async function quotaStatuses(db: Database, poolIds?: number[]): Promise<QuotaStatus[]> {
  let q = db.selectFrom('quotas').select('pool_id').distinct();
  if (poolIds) q = q.where('pool_id', 'in', poolIds.length ? poolIds : [0]);
  const pools = (await q.orderBy('pool_id').execute()).map((r) => r.pool_id);
  if (!pools.length) return [];
  const rows = await quotaRows(db, pools);
  const out: QuotaStatus[] = [];
  for (const poolId of pools) {
    const usage = await subtreeUsageByOwner(db, poolId);
    for (const row of rows.filter((r) => r.pool_id === poolId)) {
      const used = zero();
      for (const u of usage) {
        if (row.user_id !== null && u.owner_id !== row.user_id) continue;
        for (const key of RESOURCE_KEYS) used[key] += Number(u[ROW_COLUMN[key]]);
      }
      const limits = {} as QuotaStatus['limits'];
      for (const key of RESOURCE_KEYS) limits[key] = row[ROW_COLUMN[key]];
      out.push({ poolId, userId: row.user_id, used, limits });
    }
  }
  return out;
}

/** The resources whose usage is above the limit. */
export function overLimits(s: QuotaStatus): Partial<Record<ResourceKey, { used: number; limit: number }>> {
  const over: Partial<Record<ResourceKey, { used: number; limit: number }>> = {};
  for (const key of RESOURCE_KEYS) {
    const limit = s.limits[key];
    // Storage sums are doubles: rounding noise is not an excess (as in the quota engine).
    if (limit !== null && s.used[key] > limit + 1e-9) over[key] = { used: s.used[key], limit };
  }
  return over;
}

function zero(): Resources {
  return { vcpus: 0, memoryMiB: 0, storageGiB: 0, nics: 0, vms: 0 };
}
