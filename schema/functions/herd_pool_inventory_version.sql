CREATE OR REPLACE FUNCTION public.herd_pool_inventory_version()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
    BEGIN
      UPDATE hosts SET inventory_version = inventory_version + 1 WHERE pool_id = NEW.id;
      RETURN NULL;
    END $function$

