import { sql } from 'kysely';
import type { Database } from '../../schema/db.js';
import type { CandidateHost } from '../placement/placement.js';
import { candidateHosts } from '../placement/placement.repository.js';
import { ACTIVE_VM_STATES } from '../vms/vm-states.js';

/** First key of the balancer's advisory locks ("herb"); the second is the hardware pool. */
const BALANCER_LOCK = 0x68657262;

/** One process balances a pool at a time: answers false when another holds the pool (until `trx` ends). */
export async function tryLockPool(trx: Database, poolId: number): Promise<boolean> {
  const { rows } = await sql<{ locked: boolean }>`
    SELECT pg_try_advisory_xact_lock(${BALANCER_LOCK}::int4, ${poolId}::int4) AS locked`.execute(trx);
  return rows[0].locked;
}

export interface HardwarePoolBalancer {
  id: number;
  name: string;
  balancer: unknown;
}

export async function hardwarePool(db: Database, id: number): Promise<HardwarePoolBalancer | undefined> {
  return db
    .selectFrom('pools')
    .select(['id', 'name', 'balancer'])
    .where('id', '=', id)
    .where('kind', '=', 'hardware')
    .executeTakeFirst();
}

/** Hardware pools whose balancer is on (recommend or automatic). */
export async function activeBalancerPools(db: Database): Promise<HardwarePoolBalancer[]> {
  return db
    .selectFrom('pools')
    .select(['id', 'name', 'balancer'])
    .where('kind', '=', 'hardware')
    .where(sql<boolean>`coalesce(balancer->>'mode', 'off') <> 'off'`)
    .orderBy('id')
    .execute();
}

/** Every host herd knows with the hostname collectd reports it by. */
export async function allHosts(db: Database): Promise<Array<{ id: number; hostname: string }>> {
  return db.selectFrom('hosts').select(['id', 'hostname']).execute();
}

/** The hosts of one hardware pool (not of pools nested in it), with their inventory as placement reads it. */
export async function poolHosts(db: Database, poolId: number): Promise<CandidateHost[]> {
  const ids = await db.selectFrom('hosts').select('id').where('pool_id', '=', poolId).execute();
  const wanted = new Set(ids.map((r) => r.id));
  return (await candidateHosts(db, [poolId])).filter((h) => wanted.has(h.id));
}

export interface HostSampleRow {
  hostId: number;
  at: Date;
  cpuPercent: number;
  memoryUsedMiB: number | null;
}

/** Records samples; one already recorded (the same host and arrival time) is not written twice. */
export async function insertSamples(db: Database, rows: readonly HostSampleRow[]): Promise<void> {
  if (!rows.length) return;
  await db
    .insertInto('balancer_host_samples')
    .values(
      rows.map((r) => ({
        host_id: r.hostId,
        at: r.at,
        cpu_percent: r.cpuPercent,
        memory_used_mib: r.memoryUsedMiB,
      })),
    )
    .onConflict((oc) => oc.columns(['host_id', 'at']).doNothing())
    .execute();
}

export async function pruneSamples(db: Database, before: Date): Promise<void> {
  await db.deleteFrom('balancer_host_samples').where('at', '<', before).execute();
}

/** Samples of the hosts since `since`, oldest first. */
export async function samplesSince(
  db: Database,
  hostIds: readonly number[],
  since: Date,
): Promise<HostSampleRow[]> {
  if (!hostIds.length) return [];
  const rows = await db
    .selectFrom('balancer_host_samples')
    .select(['host_id', 'at', 'cpu_percent', 'memory_used_mib'])
    .where('host_id', '=', sql<number>`any(${[...hostIds]}::int[])`)
    .where('at', '>=', since)
    .orderBy('at')
    .execute();
  return rows.map((r) => ({
    hostId: r.host_id,
    at: r.at,
    cpuPercent: r.cpu_percent,
    memoryUsedMiB: r.memory_used_mib,
  }));
}

export interface PoolVmRow {
  id: number;
  name: string;
  uuid: string;
  pool_id: number;
  owner_id: number;
  state: string;
  host_id: number;
  migration_host_id: number | null;
  vcpus: number;
  memory_mib: number;
  pinned: boolean;
  cpu_limit_percent: number | null;
  pool_cpu_limit_percent: number | null;
}

/** The active VMs on the hosts (running, paused, migrating…), with their VM pool's CPU limit. */
export async function vmsOnHosts(db: Database, hostIds: readonly number[]): Promise<PoolVmRow[]> {
  if (!hostIds.length) return [];
  return db
    .selectFrom('vms')
    .innerJoin('pools', 'pools.id', 'vms.pool_id')
    .select([
      'vms.id',
      'vms.name',
      'vms.uuid',
      'vms.pool_id',
      'vms.owner_id',
      'vms.state',
      'vms.migration_host_id',
      'vms.vcpus',
      'vms.memory_mib',
      'vms.pinned',
      'vms.cpu_limit_percent',
      'pools.cpu_limit_percent as pool_cpu_limit_percent',
    ])
    .select(sql<number>`vms.host_id`.as('host_id'))
    .where('vms.host_id', '=', sql<number>`any(${[...hostIds]}::int[])`)
    .where('vms.state', '=', sql<string>`any(${[...ACTIVE_VM_STATES]}::text[])`)
    .orderBy('vms.id')
    .execute();
}

export interface MigrationHistory {
  /** Per VM: its last migration that succeeded, its failures in a row since, the last failure. */
  vms: Map<number, { lastMovedAt?: number; failures: number; lastFailedAt?: number }>;
  /** Per host: when its last migration (to or from it) ended. */
  hosts: Map<number, number>;
}

/**
 * The migrations (migrate tasks, whoever asked for them) that ended since `since`: the cool-downs and back-offs
 * come from the task history, so they hold across restarts and whichever process balances.
 */
export async function migrationHistory(db: Database, since: Date): Promise<MigrationHistory> {
  const rows = await db
    .selectFrom('tasks')
    .select(['target_id', 'state', 'finished_at'])
    .select(sql<number | null>`(args->>'hostId')::int`.as('to_host'))
    .select(sql<number | null>`(args->'from'->>'hostId')::int`.as('from_host'))
    .where('action', '=', 'migrate')
    .where('target_type', '=', 'vm')
    .where('state', 'in', ['done', 'failed'])
    .where('finished_at', '>=', since)
    .orderBy('finished_at')
    .execute();
  const out: MigrationHistory = { vms: new Map(), hosts: new Map() };
  for (const r of rows) {
    const at = r.finished_at!.getTime();
    const vm = out.vms.get(r.target_id) ?? { failures: 0 };
    if (r.state === 'done') {
      vm.lastMovedAt = at;
      vm.failures = 0;
    } else {
      vm.failures++;
      vm.lastFailedAt = at;
    }
    out.vms.set(r.target_id, vm);
    for (const h of [r.to_host, r.from_host]) if (h != null) out.hosts.set(h, at);
  }
  return out;
}

/** Pool admins' balancer user: who set the pool's balancer last (the task's user for automatic moves). */
export async function lastSettingsAuthor(db: Database, poolId: number): Promise<number | null> {
  const row = await db
    .selectFrom('audit_log')
    .select('user_id')
    .where('entity_type', '=', 'pool')
    .where('entity_id', '=', String(poolId))
    .where('action', '=', 'pool.update')
    .where(sql<boolean>`after->'balancer' IS DISTINCT FROM before->'balancer'`)
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row?.user_id ?? null;
}
