CREATE OR REPLACE FUNCTION public.herd_vm_claim(p jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
AS $function$
    DECLARE
      vm_id CONSTANT integer := (p->>'vmId')::integer;
      want_vcpus CONSTANT bigint := (p->'size'->>'vcpus')::bigint;
      want_memory CONSTANT bigint := (p->'size'->>'memoryMiB')::bigint;
      migrate CONSTANT boolean := (p->>'migrate')::boolean;
      refusal jsonb;
      vm record;
      host record;
      allocated record;
      busy integer[] := '{}';
      reasons jsonb;
      new_task integer;
      decision jsonb := p->'decision';
    BEGIN
      IF jsonb_typeof(p->'quota') = 'object' THEN
        refusal := herd_quota_claim((p->'quota'->>'poolId')::integer, (p->'quota'->>'userId')::integer,
          ARRAY(SELECT jsonb_array_elements_text(p->'quota'->'active')), want_vcpus, want_memory, 0,
          (p->'quota'->>'nics')::bigint, 1);
        IF refusal IS NOT NULL THEN
          RETURN jsonb_build_object('status', 'quota', 'refusal', refusal);
        END IF;
      END IF;

      SELECT v.state, v.vcpus, v.memory_mib INTO vm FROM vms v WHERE v.id = vm_id FOR UPDATE;
      IF NOT FOUND THEN
        RETURN jsonb_build_object('status', 'not_found');
      END IF;
      IF vm.state <> p->>'from' THEN
        RETURN jsonb_build_object('status', 'invalid_state', 'state', vm.state);
      END IF;
      IF vm.vcpus <> want_vcpus OR vm.memory_mib <> want_memory THEN
        RETURN jsonb_build_object('status', 'vm_changed');
      END IF;

      FOR round IN 1..2 LOOP
        FOR host IN
          SELECT h.id, h.entry, h.vcpus, h."memoryMiB", (h.vcpus->>0)::bigint AS vcpu_capacity,
            (h."memoryMiB"->>0)::bigint AS memory_capacity
          FROM ROWS FROM (jsonb_to_recordset(p->'hosts') AS (id integer, entry integer, vcpus jsonb,
            "memoryMiB" jsonb)) WITH ORDINALITY AS h(id, entry, vcpus, "memoryMiB", rank)
          ORDER BY h.rank
        LOOP
          IF round = 1 THEN
            SELECT a.vcpus, a.memory_mib INTO allocated FROM host_allocations a WHERE a.host_id = host.id
              FOR UPDATE SKIP LOCKED;
          ELSE
            CONTINUE WHEN host.id <> ALL(busy);
            decision := jsonb_set(decision, ARRAY['candidates', host.entry::text, '3'], '[]');
            SELECT a.vcpus, a.memory_mib INTO allocated FROM host_allocations a WHERE a.host_id = host.id FOR UPDATE;
          END IF;
          IF NOT FOUND THEN
            IF round = 1 THEN
              busy := busy || host.id;
            END IF;
            decision := jsonb_set(decision, ARRAY['candidates', host.entry::text, '3'],
              jsonb_build_array(p->>'busyReason'));
            CONTINUE;
          END IF;
          IF allocated.vcpus + want_vcpus <= host.vcpu_capacity
            AND allocated.memory_mib + want_memory <= host.memory_capacity THEN
            decision := jsonb_set(decision, '{chosenHostId}', to_jsonb(host.id));
            INSERT INTO tasks (user_id, action, target_type, target_id, pool_id, args)
            VALUES ((p->'task'->>'userId')::integer, p->'task'->>'action', 'vm', vm_id, (p->'task'->>'poolId')::integer,
              (p->'task'->'args') || jsonb_build_object('hostId', host.id))
            RETURNING id INTO new_task;
            UPDATE vms SET state = p->>'to', task_id = new_task, state_changed_at = now(),
              host_id = CASE WHEN migrate THEN vms.host_id ELSE host.id END,
              migration_host_id = CASE WHEN migrate THEN host.id ELSE vms.migration_host_id END,
              placement = decision
            WHERE vms.id = vm_id;
            RETURN jsonb_build_object('status', 'claimed', 'taskId', new_task, 'hostId', host.id);
          END IF;
          reasons := '[]';
          IF allocated.vcpus + want_vcpus > host.vcpu_capacity THEN
            reasons := reasons || to_jsonb(format(p->'takenMeanwhile'->>'vcpus', allocated.vcpus,
              host.vcpus->>0, host.vcpus->>1, host.vcpus->>2, host.vcpus->>3));
          END IF;
          IF allocated.memory_mib + want_memory > host.memory_capacity THEN
            reasons := reasons || to_jsonb(format(p->'takenMeanwhile'->>'memoryMiB', allocated.memory_mib,
              host."memoryMiB"->>0, host."memoryMiB"->>1, host."memoryMiB"->>2, host."memoryMiB"->>3));
          END IF;
          decision := jsonb_set(decision, ARRAY['candidates', host.entry::text],
            jsonb_build_array(host.id, NULL, NULL, reasons));
        END LOOP;
      END LOOP;
      RETURN jsonb_build_object('status', 'no_host', 'decision', jsonb_set(decision, '{chosenHostId}', 'null'));
    END $function$

