CREATE OR REPLACE FUNCTION public.herd_host_allocations(p_pools integer[])
 RETURNS json
 LANGUAGE sql
 STABLE
AS $function$
      SELECT json_build_object('pools', p_pools,
        'ids', coalesce(array_agg(h.id ORDER BY h.id), '{}'),
        'versions', coalesce(array_agg(h.inventory_version ORDER BY h.id), '{}'),
        'vcpus', coalesce(array_agg(coalesce(a.vcpus, 0) ORDER BY h.id), '{}'),
        'memoryMiB', coalesce(array_agg(coalesce(a.memory_mib, 0) ORDER BY h.id), '{}'))
      FROM hosts h LEFT JOIN host_allocations a ON a.host_id = h.id
      WHERE h.pool_id = ANY(p_pools)
    $function$

