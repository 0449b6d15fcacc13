import { sql } from 'kysely';
import type { Database } from '../../schema/db.js';
import { type VmVisibility, vmVisibleWhere } from '../access/access.service.js';

export function hostForGraph(db: Database, id: number) {
  return db
    .selectFrom('hosts')
    .select(['id', 'pool_id', 'hostname', 'cpus'])
    .where('id', '=', id)
    .executeTakeFirst();
}

export function vmForGraph(db: Database, id: number) {
  return db
    .selectFrom('vms')
    .select(['id', 'pool_id', 'owner_id', 'uuid', 'vcpus'])
    .where('id', '=', id)
    .executeTakeFirst();
}

export function poolForGraph(db: Database, id: number) {
  return db.selectFrom('pools').select(['id', 'kind']).where('id', '=', id).executeTakeFirst();
}

/** Hostnames and CPUs of the hosts in a hardware pool and every pool below it. */
export async function hostsUnder(
  db: Database,
  poolId: number,
): Promise<Array<{ hostname: string; cpus: number }>> {
  const { rows } = await sql<{ hostname: string; cpus: number }>`
    WITH RECURSIVE tree(id) AS (
      SELECT id FROM pools WHERE id = ${poolId}
      UNION
      SELECT p.id FROM pools p JOIN tree ON p.parent_id = tree.id
    )
    SELECT h.hostname, h.cpus FROM hosts h JOIN tree ON h.pool_id = tree.id ORDER BY h.hostname`.execute(db);
  return rows;
}

/** UUIDs and vCPUs of the VMs of a VM pool that the caller sees. */
export function vmsOfPool(db: Database, poolId: number, visibility: VmVisibility) {
  return db
    .selectFrom('vms')
    .select(['uuid', 'vcpus'])
    .where('pool_id', '=', poolId)
    .where(vmVisibleWhere(visibility))
    .orderBy('uuid')
    .execute();
}
