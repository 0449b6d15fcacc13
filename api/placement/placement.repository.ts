import { sql } from 'kysely';
import type { Database } from '../../schema/db.js';
import { ACTIVE_VM_STATES } from '../vms/vm-states.js';
import type { CandidateHost } from './placement.js';

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
