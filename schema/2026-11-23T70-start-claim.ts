import { type Kysely, sql } from 'kysely';

// Frozen once released: never edit, add a new migration instead. Imports nothing from the app.

/**
 * The VM start decision in two round trips (api/vms/vm-actions.service.ts): PL/pgSQL functions, whose statements
 * PostgreSQL plans once per connection instead of once per request.
 * - herd_vm_action_context: the VM, the caller's role on its pool, and the candidate hosts (what placement ranks);
 * - herd_quota_claim: the quota claim (README, "Quota semantics"), counted from the tables after the pool locks;
 * - herd_vm_claim: quota claim, VM lock and state check, host claim in the caller's ranking, the task, and the
 *   VM's state change — one statement, hence one transaction. The task's graphile-worker job is added right after
 *   the commit, in batches (api/tasks/task-queue-jobs.ts): add_job's NOTIFY would serialize these commits.
 * The list of active VM states is passed in by the caller (ACTIVE_VM_STATES in api/vms/vm-states.ts).
 * plan_cache_mode = force_generic_plan: PostgreSQL would otherwise plan the statements filtering on an array
 * argument (pool ids, VM ids) anew at every call, their generic plan looking costlier than it is.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    -- The hosts of some hardware pools with their inventory settings and what the active VMs on them hold,
    -- named as placement's CandidateHost; by host id.
    CREATE FUNCTION herd_candidate_hosts(p_hardware_pools integer[]) RETURNS json
    LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan AS $$
    BEGIN
      RETURN (
        SELECT coalesce(json_agg(c ORDER BY c.id), '[]')
        FROM (
          SELECT h.id, h.hostname, h.enabled, h.state, h.cpus, h.memory_mib AS "memoryMiB",
            h.reserved_vcpus AS "reservedVcpus", h.reserved_memory_mib AS "reservedMemoryMiB",
            h.cpu_allocation_ratio AS "cpuAllocationRatio", h.ram_allocation_ratio AS "ramAllocationRatio",
            hp.cpu_allocation_ratio AS "poolCpuAllocationRatio", hp.ram_allocation_ratio AS "poolRamAllocationRatio",
            coalesce(a.vcpus, 0) AS "allocatedVcpus", coalesce(a.memory_mib, 0) AS "allocatedMemoryMiB"
          FROM hosts h
          JOIN pools hp ON hp.id = h.pool_id
          LEFT JOIN host_allocations a ON a.host_id = h.id
          WHERE h.pool_id = ANY(p_hardware_pools)
        ) c);
    END $$;

    -- What an action on a VM needs to know before claiming: the VM, its hardware pool (the VM pool's parent) with
    -- the hardware pools nested in it, its NIC count, the user's strongest grant on its pool or an ancestor
    -- (role: admin > user > monitor, null without one), and with p_hosts the candidate hosts (read unlocked:
    -- the claim checks the room again under lock). NULL when the VM does not exist.
    CREATE FUNCTION herd_vm_action_context(p_vm integer, p_user integer, p_hosts boolean) RETURNS json
    LANGUAGE plpgsql STABLE AS $$
    DECLARE
      ctx record;
    BEGIN
      SELECT v.id, v.name, v.pool_id, v.owner_id, v.state, v.vcpus, v.memory_mib, v.host_id,
        hw.id AS hardware_pool_id, hw.placement_policy,
        ARRAY(
          WITH RECURSIVE sub(id) AS (
            SELECT hw.id
            UNION
            SELECT p.id FROM pools p JOIN sub ON p.parent_id = sub.id WHERE p.kind = 'hardware'
          )
          SELECT id FROM sub
        ) AS hardware_pool_ids,
        (SELECT count(*)::int FROM vm_nics n WHERE n.vm_id = v.id) AS nic_count,
        (
          WITH RECURSIVE chain(id, parent_id, depth) AS (
            SELECT vp.id, vp.parent_id, 0
            UNION
            SELECT p.id, p.parent_id, chain.depth + 1 FROM pools p JOIN chain ON p.id = chain.parent_id
            WHERE chain.depth < 64
          )
          SELECT (ARRAY['monitor', 'user', 'admin'])[max(CASE perm.role WHEN 'admin' THEN 3 WHEN 'user' THEN 2 ELSE 1 END)]
          FROM chain JOIN permissions perm ON perm.pool_id = chain.id AND perm.user_id = p_user
        ) AS role
      INTO ctx
      FROM vms v JOIN pools vp ON vp.id = v.pool_id JOIN pools hw ON hw.id = vp.parent_id
      WHERE v.id = p_vm;
      IF NOT FOUND THEN
        RETURN NULL;
      END IF;
      RETURN json_build_object(
        'id', ctx.id, 'name', ctx.name, 'pool_id', ctx.pool_id, 'owner_id', ctx.owner_id, 'state', ctx.state,
        'vcpus', ctx.vcpus, 'memory_mib', ctx.memory_mib, 'host_id', ctx.host_id,
        'hardware_pool_id', ctx.hardware_pool_id, 'hardware_pool_ids', ctx.hardware_pool_ids,
        'placement_policy', ctx.placement_policy, 'nic_count', ctx.nic_count, 'role', ctx.role,
        'hosts', CASE WHEN p_hosts THEN herd_candidate_hosts(ctx.hardware_pool_ids) END);
    END $$;

    -- The quota claim: NULL when the request fits every quota that applies, else the first refusal
    -- {resource, limit, used, requested, scope, poolId, userId} (nearest pool first, the user's row before the
    -- pool total, resources in the order below), or {error: 'pool_not_found'}.
    -- Locks the VM pool and every pool with a quota row that applies (FOR UPDATE, ascending id, one statement per
    -- round; a quota or pool moved meanwhile brings another round), then counts the usage of each quota's subtree
    -- from vms, vm_nics and volumes: storage for every VM, the rest for VMs in p_active states. Only what is
    -- requested is counted and checked. A pool's subtree is counted once for its user and total rows together.
    CREATE FUNCTION herd_quota_claim(p_pool integer, p_user integer, p_active text[], p_vcpus bigint,
      p_memory_mib bigint, p_storage_gib double precision, p_nics bigint, p_vms bigint) RETURNS jsonb
    LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
    DECLARE
      resources CONSTANT text[] := ARRAY['vcpus', 'memoryMiB', 'storageGiB', 'nics', 'vms'];
      requested CONSTANT double precision[] := ARRAY[coalesce(p_vcpus, 0), coalesce(p_memory_mib, 0),
        coalesce(p_storage_gib, 0), coalesce(p_nics, 0), coalesce(p_vms, 0)];
      chain integer[];
      ancestor integer;
      pool record;
      locked integer[] := '{}';
      missing integer[];
      q record;
      counted_pool integer;
      subtree integer[];
      u record;
      mine double precision[];
      total double precision[];
      my_part double precision;
      all_part double precision;
      used double precision[];
      limits double precision[];
      limited boolean;
    BEGIN
      IF NOT (requested[1] > 0 OR requested[2] > 0 OR requested[3] > 0 OR requested[4] > 0 OR requested[5] > 0) THEN
        RETURN NULL;
      END IF;
      LOOP
        -- The pool and its ancestors, nearest first, one primary-key lookup each.
        chain := '{}';
        ancestor := p_pool;
        WHILE ancestor IS NOT NULL AND ancestor <> ALL(chain) AND cardinality(chain) < 64 LOOP
          SELECT id, parent_id INTO pool FROM pools WHERE id = ancestor;
          EXIT WHEN NOT FOUND;
          chain := chain || pool.id;
          ancestor := pool.parent_id;
        END LOOP;
        missing := ARRAY(
          SELECT DISTINCT x FROM unnest(p_pool || ARRAY(
            SELECT pool_id FROM quotas WHERE pool_id = ANY(chain) AND (user_id IS NULL OR user_id = p_user)
          )) x
          WHERE x <> ALL(locked) ORDER BY x);
        IF cardinality(chain) = 0 THEN
          RETURN jsonb_build_object('error', 'pool_not_found');
        END IF;
        EXIT WHEN cardinality(missing) = 0;
        PERFORM 1 FROM pools WHERE id = ANY(missing) ORDER BY id FOR UPDATE;
        locked := locked || missing;
      END LOOP;

      FOR q IN
        SELECT qu.pool_id, qu.user_id,
          ARRAY[qu.vcpus, qu.memory_mib, qu.storage_gib, qu.nics, qu.vms]::double precision[] AS limits
        FROM unnest(chain) WITH ORDINALITY AS c(id, depth)
        JOIN quotas qu ON qu.pool_id = c.id AND (qu.user_id IS NULL OR qu.user_id = p_user)
        ORDER BY c.depth, qu.user_id IS NULL
      LOOP
        limits := q.limits;
        limited := false;
        FOR i IN 1..5 LOOP
          limited := limited OR (requested[i] > 0 AND limits[i] IS NOT NULL);
        END LOOP;
        CONTINUE WHEN NOT limited;
        IF counted_pool IS DISTINCT FROM q.pool_id THEN
          counted_pool := q.pool_id;
          -- The subtree's VMs once (index on pool_id), for the user and in total; their NICs and volumes then by
          -- VM id (index on vm_id).
          subtree := ARRAY(
            WITH RECURSIVE sub(id) AS (
              SELECT q.pool_id
              UNION
              SELECT p.id FROM pools p JOIN sub ON p.parent_id = sub.id
            )
            SELECT id FROM sub);
          SELECT coalesce(sum(v.vcpus) FILTER (WHERE v.active AND v.mine), 0) AS my_vcpus,
            coalesce(sum(v.vcpus) FILTER (WHERE v.active), 0) AS vcpus,
            coalesce(sum(v.memory_mib) FILTER (WHERE v.active AND v.mine), 0) AS my_memory,
            coalesce(sum(v.memory_mib) FILTER (WHERE v.active), 0) AS memory,
            count(*) FILTER (WHERE v.active AND v.mine) AS my_vms, count(*) FILTER (WHERE v.active) AS vms,
            coalesce(array_agg(v.id) FILTER (WHERE v.active AND v.mine), '{}') AS my_active_ids,
            coalesce(array_agg(v.id) FILTER (WHERE v.active), '{}') AS active_ids,
            coalesce(array_agg(v.id) FILTER (WHERE v.mine), '{}') AS my_ids,
            coalesce(array_agg(v.id), '{}') AS ids
          INTO u
          FROM (
            SELECT id, vcpus, memory_mib, state = ANY(p_active) AS active, owner_id = p_user AS mine
            FROM vms WHERE pool_id = ANY(subtree)
          ) v;
          mine := ARRAY[u.my_vcpus, u.my_memory, 0, 0, u.my_vms];
          total := ARRAY[u.vcpus, u.memory, 0, 0, u.vms];
          IF requested[3] > 0 THEN
            SELECT (SELECT coalesce(sum(size_gib), 0) FROM volumes WHERE vm_id = ANY(u.my_ids)),
              (SELECT coalesce(sum(size_gib), 0) FROM volumes WHERE vm_id = ANY(u.ids))
            INTO my_part, all_part;
            mine[3] := my_part;
            total[3] := all_part;
          END IF;
          IF requested[4] > 0 THEN
            SELECT (SELECT count(*) FROM vm_nics WHERE vm_id = ANY(u.my_active_ids)),
              (SELECT count(*) FROM vm_nics WHERE vm_id = ANY(u.active_ids))
            INTO my_part, all_part;
            mine[4] := my_part;
            total[4] := all_part;
          END IF;
        END IF;
        used := CASE WHEN q.user_id IS NULL THEN total ELSE mine END;
        FOR i IN 1..5 LOOP
          -- Storage sums are doubles: rounding noise is tolerated, never a real excess.
          IF requested[i] > 0 AND limits[i] IS NOT NULL AND used[i] + requested[i] > limits[i] + 1e-9 THEN
            RETURN jsonb_build_object('resource', resources[i], 'limit', limits[i], 'used', used[i],
              'requested', requested[i], 'scope', CASE WHEN q.user_id IS NULL THEN 'pool' ELSE 'user' END,
              'poolId', q.pool_id, 'userId', q.user_id);
          END IF;
        END LOOP;
      END LOOP;
      RETURN NULL;
    END $$;

    -- Start, restore or migrate a VM, as one transaction; its task is queued without a job (the caller adds it).
    -- p (jsonb):
    --   vmId, from (the state the caller saw), to (the transitional state), size {vcpus, memoryMiB} (as seen),
    --   quota {poolId, userId, nics, active} or null (the VM already counts), migrate (claim as the migration's
    --   destination, not as the VM's host), task {userId, action, poolId, args},
    --   hosts [{id, entry (index in decision.candidates), vcpus and memoryMiB: [capacity, total, reserved,
    --   ratio]}] best first, takenMeanwhile {vcpus, memoryMiB} (format() strings of the reasons a host whose room
    --   was taken gives: %1$s allocated, %2$s capacity, %3$s total, %4$s reserved, %5$s ratio), busyReason,
    --   decision (placement's stored decision, kept on the VM).
    -- Order of locks as in every claim: the quota's pools, the VM, then one host's allocation row at a time. A first
    -- round passes over hosts another claim holds (SKIP LOCKED), a second waits for them. The claimed host's room
    -- is taken by the VM's state change (the host_allocations triggers) while its row is locked.
    -- Answers {status: 'claimed', taskId, hostId}, {status: 'quota', refusal}, {status: 'not_found'},
    -- {status: 'invalid_state', state}, {status: 'vm_changed'} (resized meanwhile) or {status: 'no_host', decision}
    -- (the decision as it ended, nothing changed).
    CREATE FUNCTION herd_vm_claim(p jsonb) RETURNS jsonb
    LANGUAGE plpgsql AS $$
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
    END $$;
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`
    DROP FUNCTION herd_vm_claim(jsonb);
    DROP FUNCTION herd_quota_claim(integer, integer, text[], bigint, bigint, double precision, bigint, bigint);
    DROP FUNCTION herd_vm_action_context(integer, integer, boolean);
    DROP FUNCTION herd_candidate_hosts(integer[]);
  `.execute(db);
}
