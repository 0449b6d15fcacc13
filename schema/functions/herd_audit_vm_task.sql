CREATE OR REPLACE FUNCTION public.herd_audit_vm_task()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
    BEGIN
      INSERT INTO audit_log (user_id, action, entity_type, entity_id, after)
      VALUES (NEW.user_id, 'vm.' || NEW.action, 'vm', NEW.target_id::text,
              jsonb_strip_nulls(jsonb_build_object(
                'taskId', NEW.id,
                'from', NEW.args->'from',
                'hostId', NEW.args->'hostId',
                'force', NEW.args->'force')));
      RETURN NULL;
    END $function$

