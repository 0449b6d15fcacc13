CREATE OR REPLACE FUNCTION public.herd_nic_usage()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
    BEGIN
      IF TG_OP <> 'INSERT' THEN
        UPDATE vms SET nic_count = nic_count - 1 WHERE id = OLD.vm_id;
      END IF;
      IF TG_OP <> 'DELETE' THEN
        UPDATE vms SET nic_count = nic_count + 1 WHERE id = NEW.vm_id;
      END IF;
      RETURN NULL;
    END $function$

