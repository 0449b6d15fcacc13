CREATE OR REPLACE FUNCTION public.herd_host_set_stamp(p_pools integer[])
 RETURNS text
 LANGUAGE sql
 STABLE
AS $function$
      SELECT coalesce(string_agg(pool_id || ':' || stamp, ',' ORDER BY pool_id), '')
      FROM pool_host_stamps WHERE pool_id = ANY(p_pools)
    $function$

