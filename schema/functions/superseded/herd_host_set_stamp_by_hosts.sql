CREATE OR REPLACE FUNCTION public.herd_host_set_stamp_by_hosts(p_pools integer[])
 RETURNS text
 LANGUAGE sql
 STABLE
AS $function$
      SELECT coalesce(max(inventory_version), 0) || ':' || count(*) FROM hosts WHERE pool_id = ANY(p_pools)
    $function$

