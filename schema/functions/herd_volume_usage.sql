CREATE OR REPLACE FUNCTION public.herd_volume_usage()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
    BEGIN
      IF TG_OP <> 'INSERT' AND OLD.vm_id IS NOT NULL THEN
        UPDATE vms SET storage_gib = storage_gib - OLD.size_gib WHERE id = OLD.vm_id;
      END IF;
      IF TG_OP <> 'DELETE' AND NEW.vm_id IS NOT NULL THEN
        UPDATE vms SET storage_gib = storage_gib + NEW.size_gib WHERE id = NEW.vm_id;
      END IF;
      RETURN NULL;
    END $function$

