CREATE OR REPLACE FUNCTION public.herd_vm_allocation()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
    DECLARE
      active CONSTANT text[] := ARRAY['starting', 'running', 'stopping', 'suspending', 'paused', 'resuming',
        'saving', 'restoring', 'migrating', 'unknown'];
      hosts integer[] := '{}';
      vcpus bigint[] := '{}';
      memory bigint[] := '{}';
    BEGIN
      IF TG_OP <> 'INSERT' AND OLD.state = ANY(active) THEN
        hosts := hosts || OLD.host_id; vcpus := vcpus || -OLD.vcpus::bigint; memory := memory || -OLD.memory_mib;
        IF OLD.migration_host_id IS DISTINCT FROM OLD.host_id THEN
          hosts := hosts || OLD.migration_host_id; vcpus := vcpus || -OLD.vcpus::bigint; memory := memory || -OLD.memory_mib;
        END IF;
      END IF;
      IF TG_OP <> 'DELETE' AND NEW.state = ANY(active) THEN
        hosts := hosts || NEW.host_id; vcpus := vcpus || NEW.vcpus::bigint; memory := memory || NEW.memory_mib;
        IF NEW.migration_host_id IS DISTINCT FROM NEW.host_id THEN
          hosts := hosts || NEW.migration_host_id; vcpus := vcpus || NEW.vcpus::bigint; memory := memory || NEW.memory_mib;
        END IF;
      END IF;
      INSERT INTO host_allocations AS a (host_id, vcpus, memory_mib)
      SELECT d.host_id, sum(d.vcpus), sum(d.memory) FROM unnest(hosts, vcpus, memory) AS d(host_id, vcpus, memory)
      WHERE d.host_id IS NOT NULL
      GROUP BY d.host_id HAVING sum(d.vcpus) <> 0 OR sum(d.memory) <> 0
      ORDER BY d.host_id
      ON CONFLICT (host_id) DO UPDATE SET vcpus = a.vcpus + EXCLUDED.vcpus, memory_mib = a.memory_mib + EXCLUDED.memory_mib;
      RETURN NULL;
    END $function$

