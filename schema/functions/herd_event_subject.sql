CREATE OR REPLACE FUNCTION public.herd_event_subject(p_host text, p_plugin_instance text, OUT subject_host_id integer, OUT subject_vm_id integer)
 RETURNS record
 LANGUAGE plpgsql
 STABLE
AS $function$
    DECLARE
      candidate text;
      vm_host integer;
    BEGIN
      FOREACH candidate IN ARRAY ARRAY[p_host, p_plugin_instance] LOOP
        SELECT v.id, v.host_id INTO subject_vm_id, vm_host FROM vms v
          WHERE v.uuid = substring(candidate FROM
            '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}')::uuid;
        IF subject_vm_id IS NULL THEN
          SELECT v.id, v.host_id INTO subject_vm_id, vm_host FROM vms v
            WHERE v.id = substring(candidate FROM 'herd-([0-9]{1,9})-')::integer
              AND position('herd-' || v.id || '-' || v.name IN candidate) > 0;
        END IF;
        EXIT WHEN subject_vm_id IS NOT NULL;
      END LOOP;
      SELECT h.id INTO subject_host_id FROM hosts h WHERE h.hostname = p_host ORDER BY h.id LIMIT 1;
      IF subject_host_id IS NULL AND subject_vm_id IS NULL THEN
        SELECT h.id INTO subject_host_id FROM hosts h
          WHERE split_part(h.hostname, '.', 1) = split_part(p_host, '.', 1) ORDER BY h.id LIMIT 1;
      END IF;
      IF subject_host_id IS NULL THEN
        subject_host_id := vm_host;
      END IF;
    END $function$

