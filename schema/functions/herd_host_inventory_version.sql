CREATE OR REPLACE FUNCTION public.herd_host_inventory_version()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
    BEGIN
      NEW.inventory_version := nextval('herd_host_inventory_version');
      PERFORM herd_pool_host_stamps_bump(ARRAY[OLD.pool_id, NEW.pool_id]);
      RETURN NEW;
    END $function$

