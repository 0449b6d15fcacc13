CREATE OR REPLACE FUNCTION public.herd_pool_host_stamps_bump(p_pools integer[])
 RETURNS void
 LANGUAGE sql
AS $function$
      INSERT INTO pool_host_stamps AS s (pool_id, stamp)
      SELECT p.id, nextval('herd_host_inventory_version') FROM pools p WHERE p.id = ANY(p_pools) ORDER BY p.id
      ON CONFLICT (pool_id) DO UPDATE SET stamp = EXCLUDED.stamp
    $function$

