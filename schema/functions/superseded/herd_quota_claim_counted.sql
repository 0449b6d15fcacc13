CREATE OR REPLACE FUNCTION public.herd_quota_claim_counted(p_pool integer, p_user integer, p_active text[], p_vcpus bigint, p_memory_mib bigint, p_storage_gib double precision, p_nics bigint, p_vms bigint)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
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
    END $function$

