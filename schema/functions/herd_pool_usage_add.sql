CREATE OR REPLACE FUNCTION public.herd_pool_usage_add(p_pool integer, p_owner integer, p_defined integer, p_vcpus bigint, p_memory_mib bigint, p_vms integer, p_nics bigint, p_storage_gib double precision)
 RETURNS void
 LANGUAGE sql
AS $function$
      INSERT INTO pool_usage AS u (pool_id, owner_id, vms_defined, vcpus, memory_mib, vms, nics, storage_gib)
      VALUES (p_pool, p_owner, p_defined, p_vcpus, p_memory_mib, p_vms, p_nics, p_storage_gib)
      ON CONFLICT (pool_id, owner_id) DO UPDATE SET vms_defined = u.vms_defined + EXCLUDED.vms_defined,
        vcpus = u.vcpus + EXCLUDED.vcpus, memory_mib = u.memory_mib + EXCLUDED.memory_mib, vms = u.vms + EXCLUDED.vms,
        nics = u.nics + EXCLUDED.nics, storage_gib = u.storage_gib + EXCLUDED.storage_gib
    $function$

