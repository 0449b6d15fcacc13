import { sql } from 'kysely';
import type { Database } from '../../schema/db.js';

export interface SubtreeHostRow {
  hostname: string;
  cpus: number;
  memory_mib: number;
  reserved_vcpus: number;
  reserved_memory_mib: number;
  cpu_allocation_ratio: number | null;
  ram_allocation_ratio: number | null;
  pool_cpu_allocation_ratio: number | null;
  pool_ram_allocation_ratio: number | null;
  allocated_vcpus: number;
  allocated_memory_mib: number;
}

/** `sub(id)`: the pool and every pool below it, as the start of a statement. */
const subtree = (poolId: number) => sql`WITH RECURSIVE sub(id) AS (
      SELECT id FROM pools WHERE id = ${poolId}
      UNION
      SELECT p.id FROM pools p JOIN sub ON p.parent_id = sub.id
    )`;

export function poolKind(db: Database, id: number) {
  return db.selectFrom('pools').select(['id', 'name', 'kind']).where('id', '=', id).executeTakeFirst();
}

export function hardwarePoolIds(db: Database): Promise<number[]> {
  return db
    .selectFrom('pools')
    .select('id')
    .where('kind', '=', 'hardware')
    .orderBy('id')
    .execute()
    .then((rows) => rows.map((r) => r.id));
}

/** The hosts of a hardware pool and of the pools below it, with their inventory and what their VMs hold. */
export async function subtreeHosts(db: Database, poolId: number): Promise<SubtreeHostRow[]> {
  const { rows } = await sql<SubtreeHostRow>`
    ${subtree(poolId)}
    SELECT h.hostname, h.cpus, h.memory_mib::float8 AS memory_mib, h.reserved_vcpus,
      h.reserved_memory_mib::float8 AS reserved_memory_mib, h.cpu_allocation_ratio, h.ram_allocation_ratio,
      p.cpu_allocation_ratio AS pool_cpu_allocation_ratio, p.ram_allocation_ratio AS pool_ram_allocation_ratio,
      coalesce(a.vcpus, 0)::float8 AS allocated_vcpus, coalesce(a.memory_mib, 0)::float8 AS allocated_memory_mib
    FROM hosts h JOIN sub ON h.pool_id = sub.id JOIN pools p ON p.id = h.pool_id
    LEFT JOIN host_allocations a ON a.host_id = h.id
    ORDER BY h.hostname`.execute(db);
  return rows;
}

/** GiB of the volumes in the storage pools of a pool's subtree: all of them, and those attached to a VM. */
export async function subtreeStorage(
  db: Database,
  poolId: number,
): Promise<{ total_gib: number; attached_gib: number; storage_pools: number }> {
  const { rows } = await sql<{ total_gib: number; attached_gib: number; storage_pools: number }>`
    ${subtree(poolId)}
    SELECT coalesce(sum(v.size_gib), 0)::float8 AS total_gib,
      coalesce(sum(v.size_gib) FILTER (WHERE v.vm_id IS NOT NULL), 0)::float8 AS attached_gib,
      count(DISTINCT s.id)::int AS storage_pools
    FROM storage_pools s JOIN sub ON s.pool_id = sub.id LEFT JOIN volumes v ON v.storage_pool_id = s.id`.execute(
    db,
  );
  return rows[0];
}
