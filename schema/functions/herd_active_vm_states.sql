CREATE OR REPLACE FUNCTION public.herd_active_vm_states()
 RETURNS text[]
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
      SELECT ARRAY['starting', 'running', 'stopping', 'suspending', 'paused', 'resuming', 'saving', 'restoring',
        'migrating', 'unknown']::text[]
    $function$

