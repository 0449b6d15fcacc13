import { type RawBuilder, type SqlBool, sql } from 'kysely';
import type { Database } from '../../schema/db.js';
import { type VmVisibility, vmVisibleWhere } from '../access/access.service.js';
import { ACTIVE_VM_STATES } from '../vms/vm-states.js';

export interface SizedVmRow {
  id: number;
  name: string;
  uuid: string;
  state: string;
  pool_id: number;
  pool_name: string;
  owner_id: number;
  owner: string;
  vcpus: number;
  memory_mib: number;
}

export interface SizedHostRow {
  id: number;
  hostname: string;
  pool_id: number;
  pool_name: string;
  cpus: number;
  memory_mib: number;
}

/** `column` is the pool or a pool below it. */
function inSubtree(column: 'vms.pool_id' | 'hosts.pool_id', poolId: number): RawBuilder<SqlBool> {
  return sql<SqlBool>`${sql.ref(column)} IN (
    WITH RECURSIVE sub(id) AS (
      SELECT id FROM pools WHERE id = ${poolId}
      UNION
      SELECT p.id FROM pools p JOIN sub ON p.parent_id = sub.id
    ) SELECT id FROM sub)`;
}

/** VMs holding vCPUs and memory now (active states) that the caller sees, in `poolId`'s subtree if given. */
export function activeVms(db: Database, visibility: VmVisibility, poolId?: number): Promise<SizedVmRow[]> {
  let q = db
    .selectFrom('vms')
    .innerJoin('pools', 'pools.id', 'vms.pool_id')
    .innerJoin('users', 'users.id', 'vms.owner_id')
    .select([
      'vms.id',
      'vms.name',
      'vms.uuid',
      'vms.state',
      'vms.pool_id',
      'pools.name as pool_name',
      'vms.owner_id',
      'users.username as owner',
      'vms.vcpus',
      'vms.memory_mib',
    ])
    .where('vms.state', 'in', ACTIVE_VM_STATES)
    .where(vmVisibleWhere(visibility));
  if (poolId !== undefined) q = q.where(inSubtree('vms.pool_id', poolId));
  return q.orderBy('vms.id').execute() as Promise<SizedVmRow[]>;
}

/** Hosts of the pools the caller sees (`'all'`: every host), in `poolId`'s subtree if given. */
export function visibleHosts(
  db: Database,
  poolIds: number[] | 'all',
  poolId?: number,
): Promise<SizedHostRow[]> {
  let q = db
    .selectFrom('hosts')
    .innerJoin('pools', 'pools.id', 'hosts.pool_id')
    .select([
      'hosts.id',
      'hosts.hostname',
      'hosts.pool_id',
      'pools.name as pool_name',
      'hosts.cpus',
      'hosts.memory_mib',
    ]);
  if (poolIds !== 'all') q = q.where('hosts.pool_id', 'in', poolIds.length ? poolIds : [0]);
  if (poolId !== undefined) q = q.where(inSubtree('hosts.pool_id', poolId));
  return q.orderBy('hosts.id').execute() as Promise<SizedHostRow[]>;
}
