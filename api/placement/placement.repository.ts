import { type RawBuilder, sql } from 'kysely';
import type { Database } from '../../lib/db.js';
import { ACTIVE_VM_STATES } from '../vms/vm-states.js';
import type { CandidateHost } from './placement.js';

/**
 * The hosts of some hardware pools (a VM's hardware pool and those nested in it) with their inventory settings and
 * what the active VMs on them hold (host_allocations, kept by triggers), as a SELECT to embed: one row per host,
 * columns named as CandidateHost.
 */
export function candidateHostsQuery(hardwarePoolIds: readonly number[]): RawBuilder<CandidateHost> {
  return sql<CandidateHost>`
    SELECT h.id, h.hostname, h.enabled, h.state, h.cpus, h.memory_mib AS "memoryMiB",
      h.reserved_vcpus AS "reservedVcpus", h.reserved_memory_mib AS "reservedMemoryMiB",
      h.cpu_allocation_ratio AS "cpuAllocationRatio", h.ram_allocation_ratio AS "ramAllocationRatio",
      hp.cpu_allocation_ratio AS "poolCpuAllocationRatio", hp.ram_allocation_ratio AS "poolRamAllocationRatio",
      coalesce(a.vcpus, 0) AS "allocatedVcpus", coalesce(a.memory_mib, 0) AS "allocatedMemoryMiB"
    FROM hosts h
    JOIN pools hp ON hp.id = h.pool_id
    LEFT JOIN host_allocations a ON a.host_id = h.id
    WHERE h.pool_id = any(${[...hardwarePoolIds]}::int[])
    ORDER BY h.id`;
}

/** The same hosts through herd_candidate_hosts (migration T70), as the start decision reads them. */
export async function candidateHosts(
  db: Database,
  hardwarePoolIds: readonly number[],
): Promise<CandidateHost[]> {
  const { rows } = await sql<{ hosts: CandidateHost[] }>`
    SELECT herd_candidate_hosts(${[...hardwarePoolIds]}::int[]) AS hosts`.execute(db);
  return rows[0].hosts;
}

/**
 * Hosts whose recorded allocation differs from what their VMs hold now, recounted from the vms table. There
 * must be none: the triggers keep host_allocations in step with every change.
 */
export async function allocationDrift(db: Database): Promise<
  Array<{
    host_id: number;
    recorded_vcpus: number;
    vcpus: number;
    recorded_memory_mib: number;
    memory_mib: number;
  }>
> {
  const active = [...ACTIVE_VM_STATES];
  const { rows } = await sql<{
    host_id: number;
    recorded_vcpus: number;
    vcpus: number;
    recorded_memory_mib: number;
    memory_mib: number;
  }>`
    WITH counted AS (
      SELECT x.h AS host_id, sum(v.vcpus)::int8 AS vcpus, sum(v.memory_mib)::int8 AS memory_mib
      FROM vms v, LATERAL (SELECT v.host_id UNION SELECT v.migration_host_id) x(h)
      WHERE x.h IS NOT NULL AND v.state = any(${active}::text[])
      GROUP BY x.h
    )
    SELECT h.id AS host_id, coalesce(a.vcpus, 0) AS recorded_vcpus, coalesce(c.vcpus, 0) AS vcpus,
      coalesce(a.memory_mib, 0) AS recorded_memory_mib, coalesce(c.memory_mib, 0) AS memory_mib
    FROM hosts h LEFT JOIN host_allocations a ON a.host_id = h.id LEFT JOIN counted c ON c.host_id = h.id
    WHERE a.host_id IS NULL OR coalesce(a.vcpus, 0) <> coalesce(c.vcpus, 0)
      OR coalesce(a.memory_mib, 0) <> coalesce(c.memory_mib, 0)
    ORDER BY h.id`.execute(db);
  return rows;
}
