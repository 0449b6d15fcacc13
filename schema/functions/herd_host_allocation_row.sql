CREATE OR REPLACE FUNCTION public.herd_host_allocation_row()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
    BEGIN
      INSERT INTO host_allocations (host_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
      RETURN NULL;
    END $function$

