import { sql } from 'kysely';
import type { Database } from '../../schema/db.js';
import { type VmVisibility, vmVisibleWhere } from '../access/access.repository.js';

/** Pools to read: every pool, or these ids. */
export type PoolScope = number[] | 'all';

export interface FleetPoolRow {
  id: number;
  name: string;
  kind: 'hardware' | 'vm';
  parent_id: number | null;
}

export interface FleetHostRow {
  id: number;
  hostname: string;
  pool_id: number;
  state: string;
  enabled: boolean;
  cpus: number;
  memory_mib: number;
  allocated_vcpus: number;
  allocated_memory_mib: number;
}

export interface FleetVmRow {
  id: number;
  name: string;
  pool_id: number;
  state: string;
  vcpus: number;
  memory_mib: number;
  hostname: string | null;
  owner: string;
}

export async function fleetPools(db: Database, scope: PoolScope): Promise<FleetPoolRow[]> {
  let q = db.selectFrom('pools').select(['id', 'name', 'kind', 'parent_id']);
  if (scope !== 'all') q = q.where('id', '=', sql<number>`any(${scope}::int[])`);
  return q.orderBy('id').execute();
}

/** Hosts with what their active VMs hold on them (host_allocations, kept by triggers). */
export async function fleetHosts(db: Database, scope: PoolScope): Promise<FleetHostRow[]> {
  let q = db
    .selectFrom('hosts')
    .leftJoin('host_allocations', 'host_allocations.host_id', 'hosts.id')
    .select([
      'hosts.id',
      'hosts.hostname',
      'hosts.pool_id',
      'hosts.state',
      'hosts.enabled',
      'hosts.cpus',
      'hosts.memory_mib',
      sql<number>`coalesce(host_allocations.vcpus, 0)::float8`.as('allocated_vcpus'),
      sql<number>`coalesce(host_allocations.memory_mib, 0)::float8`.as('allocated_memory_mib'),
    ]);
  if (scope !== 'all') q = q.where('hosts.pool_id', '=', sql<number>`any(${scope}::int[])`);
  return q.orderBy('hosts.id').execute();
}

export async function fleetVms(db: Database, visibility: VmVisibility): Promise<FleetVmRow[]> {
  return db
    .selectFrom('vms')
    .innerJoin('users', 'users.id', 'vms.owner_id')
    .leftJoin('hosts', 'hosts.id', 'vms.host_id')
    .select([
      'vms.id',
      'vms.name',
      'vms.pool_id',
      'vms.state',
      'vms.vcpus',
      'vms.memory_mib',
      'hosts.hostname',
      'users.username as owner',
    ])
    .where(vmVisibleWhere(visibility))
    .orderBy('vms.id')
    .execute();
}

export async function usernames(db: Database, ids: number[]): Promise<Map<number, string>> {
  if (ids.length === 0) return new Map();
  const rows = await db.selectFrom('users').select(['id', 'username']).where('id', 'in', ids).execute();
  return new Map(rows.map((r) => [r.id, r.username]));
}
