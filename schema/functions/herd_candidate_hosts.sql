CREATE OR REPLACE FUNCTION public.herd_candidate_hosts(p_hardware_pools integer[])
 RETURNS json
 LANGUAGE plpgsql
 STABLE
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
    BEGIN
      RETURN (
        SELECT coalesce(json_agg(c ORDER BY c.id), '[]')
        FROM (
          SELECT h.id, h.hostname, h.enabled, h.state, h.cpus, h.memory_mib AS "memoryMiB",
            h.reserved_vcpus AS "reservedVcpus", h.reserved_memory_mib AS "reservedMemoryMiB",
            h.cpu_allocation_ratio AS "cpuAllocationRatio", h.ram_allocation_ratio AS "ramAllocationRatio",
            hp.cpu_allocation_ratio AS "poolCpuAllocationRatio", hp.ram_allocation_ratio AS "poolRamAllocationRatio",
            coalesce(a.vcpus, 0) AS "allocatedVcpus", coalesce(a.memory_mib, 0) AS "allocatedMemoryMiB"
          FROM hosts h
          JOIN pools hp ON hp.id = h.pool_id
          LEFT JOIN host_allocations a ON a.host_id = h.id
          WHERE h.pool_id = ANY(p_hardware_pools)
        ) c);
    END $function$

