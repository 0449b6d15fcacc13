CREATE OR REPLACE FUNCTION public.herd_host_records(p_ids integer[])
 RETURNS json
 LANGUAGE sql
 STABLE
AS $function$
      SELECT coalesce(json_agg(json_build_object('version', h.inventory_version, 'id', h.id,
        'hostname', h.hostname, 'enabled', h.enabled, 'state', h.state, 'cpus', h.cpus, 'memoryMiB', h.memory_mib,
        'reservedVcpus', h.reserved_vcpus, 'reservedMemoryMiB', h.reserved_memory_mib,
        'cpuAllocationRatio', h.cpu_allocation_ratio, 'ramAllocationRatio', h.ram_allocation_ratio,
        'poolCpuAllocationRatio', hp.cpu_allocation_ratio, 'poolRamAllocationRatio', hp.ram_allocation_ratio)), '[]')
      FROM hosts h JOIN pools hp ON hp.id = h.pool_id
      WHERE h.id = ANY(p_ids)
    $function$

