CREATE OR REPLACE FUNCTION public.herd_vm_usage()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
    DECLARE
      was_active boolean := TG_OP <> 'INSERT' AND OLD.state = ANY(herd_active_vm_states());
      is_active boolean := TG_OP <> 'DELETE' AND NEW.state = ANY(herd_active_vm_states());
    BEGIN
      IF TG_OP = 'UPDATE' AND OLD.pool_id = NEW.pool_id AND OLD.owner_id = NEW.owner_id THEN
        PERFORM herd_pool_usage_add(NEW.pool_id, NEW.owner_id, 0,
          CASE WHEN is_active THEN NEW.vcpus ELSE 0 END - CASE WHEN was_active THEN OLD.vcpus ELSE 0 END,
          CASE WHEN is_active THEN NEW.memory_mib ELSE 0 END - CASE WHEN was_active THEN OLD.memory_mib ELSE 0 END,
          is_active::integer - was_active::integer,
          CASE WHEN is_active THEN NEW.nic_count ELSE 0 END - CASE WHEN was_active THEN OLD.nic_count ELSE 0 END,
          NEW.storage_gib - OLD.storage_gib);
        RETURN NULL;
      END IF;
      IF TG_OP <> 'INSERT' THEN
        PERFORM herd_pool_usage_add(OLD.pool_id, OLD.owner_id, -1, CASE WHEN was_active THEN -OLD.vcpus ELSE 0 END,
          CASE WHEN was_active THEN -OLD.memory_mib ELSE 0 END, -was_active::integer,
          CASE WHEN was_active THEN -OLD.nic_count ELSE 0 END, -OLD.storage_gib);
      END IF;
      IF TG_OP <> 'DELETE' THEN
        PERFORM herd_pool_usage_add(NEW.pool_id, NEW.owner_id, 1, CASE WHEN is_active THEN NEW.vcpus ELSE 0 END,
          CASE WHEN is_active THEN NEW.memory_mib ELSE 0 END, is_active::integer,
          CASE WHEN is_active THEN NEW.nic_count ELSE 0 END, NEW.storage_gib);
      END IF;
      RETURN NULL;
    END $function$

