CREATE OR REPLACE FUNCTION public.herd_pool_host_stamp()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
    BEGIN
      IF TG_TABLE_NAME = 'pools' THEN
        PERFORM herd_pool_host_stamps_bump(ARRAY[NEW.id]);
      ELSIF TG_OP = 'INSERT' THEN
        PERFORM herd_pool_host_stamps_bump(ARRAY[NEW.pool_id]);
      ELSE
        PERFORM herd_pool_host_stamps_bump(ARRAY[OLD.pool_id]);
      END IF;
      RETURN NULL;
    END $function$

