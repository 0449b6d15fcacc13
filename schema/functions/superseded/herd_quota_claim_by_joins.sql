CREATE OR REPLACE FUNCTION public.herd_quota_claim_by_joins(p_pool integer, p_user integer, p_active text[], p_vcpus bigint, p_memory_mib bigint, p_storage_gib double precision, p_nics bigint, p_vms bigint)
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
      u record;
      mine double precision[];
      total double precision[];
      used double precision[];
      limits double precision[];
      limited boolean;
    BEGIN
      IF NOT (p_active @> herd_active_vm_states() AND p_active <@ herd_active_vm_states()) THEN
        RAISE EXCEPTION 'active VM states % differ from herd_active_vm_states() %', p_active, herd_active_vm_states();
      END IF;
      IF NOT (requested[1] > 0 OR requested[2] > 0 OR requested[3] > 0 OR requested[4] > 0 OR requested[5] > 0) THEN
        RETURN NULL;
      END IF;
      LOOP
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
          SELECT coalesce(sum(x.vcpus) FILTER (WHERE x.owner_id = p_user), 0) AS my_vcpus,
            coalesce(sum(x.vcpus), 0) AS vcpus,
            coalesce(sum(x.memory_mib) FILTER (WHERE x.owner_id = p_user), 0) AS my_memory,
            coalesce(sum(x.memory_mib), 0) AS memory,
            coalesce(sum(x.storage_gib) FILTER (WHERE x.owner_id = p_user), 0) AS my_storage,
            coalesce(sum(x.storage_gib), 0) AS storage,
            coalesce(sum(x.nics) FILTER (WHERE x.owner_id = p_user), 0) AS my_nics,
            coalesce(sum(x.nics), 0) AS nics,
            coalesce(sum(x.vms) FILTER (WHERE x.owner_id = p_user), 0) AS my_vms,
            coalesce(sum(x.vms), 0) AS vms
          INTO u
          FROM pool_usage x
          WHERE x.pool_id = ANY(ARRAY(
            WITH RECURSIVE sub(id) AS (
              SELECT q.pool_id
              UNION
              SELECT p.id FROM pools p JOIN sub ON p.parent_id = sub.id
            )
            SELECT id FROM sub));
          mine := ARRAY[u.my_vcpus, u.my_memory, u.my_storage, u.my_nics, u.my_vms];
          total := ARRAY[u.vcpus, u.memory, u.storage, u.nics, u.vms];
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

