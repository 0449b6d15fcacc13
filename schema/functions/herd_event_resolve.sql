CREATE OR REPLACE FUNCTION public.herd_event_resolve()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
    BEGIN
      SELECT s.subject_host_id, s.subject_vm_id INTO NEW.host_id, NEW.vm_id
        FROM herd_event_subject(NEW.host, NEW.plugin_instance) s;
      RETURN NEW;
    END $function$

