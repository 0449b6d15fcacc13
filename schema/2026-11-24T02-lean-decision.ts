import { type Kysely, sql } from 'kysely';

// Frozen once released: never edit, add a new migration instead. Imports nothing from the app.

/**
 * Less work in PostgreSQL per start decision (measured with pgbench, CPU per call: README, "Placement"):
 * - A set of hardware pools is stamped from one row per pool instead of from its hosts: pool_host_stamps.stamp
 *   takes a new value of the inventory sequence (2026-11-24T00) whenever a host of the pool is added, removed,
 *   moved in or out, or changes what placement reads of it (from T80's hosts_inventory_version trigger), and when
 *   the pool's allocation ratios change. herd_host_set_stamp reads those rows, not every host of the set: the
 *   context of a decision no longer grows with the hosts of its hardware pools. Only inventory changes write a
 *   stamp (a heartbeat that changes nothing placement reads does not), so host updates rarely wait on each other.
 * - herd_vm_action_context and herd_quota_claim walk pools and read quotas, permissions and usage through their
 *   indexes (LATERAL lookups), where the generic plans of T70/T81 hashed whole tables; a quota on a pool without
 *   child pools reads that pool's usage rows directly. Each LATERAL subquery has an ORDER BY or LIMIT, which keeps
 *   the planner from flattening it back into a join it may hash: it stays one index lookup per outer row. The context takes the NIC count kept on the VM (T81).
 *   Same arguments and answers. The versions they replace are kept, renamed, for down().
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    -- Each pool's stamp: a new value of the inventory sequence with every change to its hosts as placement sees
    -- them. A table of its own, written only by these triggers, always after the host row: no lock is taken on
    -- pools, so a host's change never waits in a cycle with what locks pools first.
    CREATE TABLE pool_host_stamps (
      pool_id integer PRIMARY KEY REFERENCES pools(id) ON DELETE CASCADE,
      stamp bigint NOT NULL
    );
    INSERT INTO pool_host_stamps (pool_id, stamp)
    SELECT id, nextval('herd_host_inventory_version') FROM pools ORDER BY id;

    -- New stamps for some pools, in id order.
    CREATE FUNCTION herd_pool_host_stamps_bump(p_pools integer[]) RETURNS void
    LANGUAGE sql AS $$
      INSERT INTO pool_host_stamps AS s (pool_id, stamp)
      SELECT p.id, nextval('herd_host_inventory_version') FROM pools p WHERE p.id = ANY(p_pools) ORDER BY p.id
      ON CONFLICT (pool_id) DO UPDATE SET stamp = EXCLUDED.stamp
    $$;

    -- T80's trigger function, which runs whenever a host changes as placement sees it (the host row is locked
    -- by then): its pools' stamps too.
    CREATE OR REPLACE FUNCTION herd_host_inventory_version() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
      NEW.inventory_version := nextval('herd_host_inventory_version');
      PERFORM herd_pool_host_stamps_bump(ARRAY[OLD.pool_id, NEW.pool_id]);
      RETURN NEW;
    END $$;

    -- A host added or removed; a pool's allocation ratios changed.
    CREATE FUNCTION herd_pool_host_stamp() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_TABLE_NAME = 'pools' THEN
        PERFORM herd_pool_host_stamps_bump(ARRAY[NEW.id]);
      ELSIF TG_OP = 'INSERT' THEN
        PERFORM herd_pool_host_stamps_bump(ARRAY[NEW.pool_id]);
      ELSE
        PERFORM herd_pool_host_stamps_bump(ARRAY[OLD.pool_id]);
      END IF;
      RETURN NULL;
    END $$;
    CREATE TRIGGER hosts_pool_host_stamp AFTER INSERT OR DELETE ON hosts
      FOR EACH ROW EXECUTE FUNCTION herd_pool_host_stamp();
    -- (Named to fire after T80's pools_inventory_version, which updates the pool's hosts: host rows first, then
    -- the stamp, as everywhere.)
    CREATE TRIGGER pools_ratio_stamp AFTER UPDATE ON pools FOR EACH ROW
      WHEN ((OLD.cpu_allocation_ratio, OLD.ram_allocation_ratio)
        IS DISTINCT FROM (NEW.cpu_allocation_ratio, NEW.ram_allocation_ratio))
      EXECUTE FUNCTION herd_pool_host_stamp();

    ALTER FUNCTION herd_host_set_stamp(integer[]) RENAME TO herd_host_set_stamp_by_hosts;
    CREATE FUNCTION herd_host_set_stamp(p_pools integer[]) RETURNS text
    LANGUAGE sql STABLE AS $$
      SELECT coalesce(string_agg(pool_id || ':' || stamp, ',' ORDER BY pool_id), '')
      FROM pool_host_stamps WHERE pool_id = ANY(p_pools)
    $$;

    ALTER FUNCTION herd_vm_action_context(integer, integer, boolean) RENAME TO herd_vm_action_context_by_joins;
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
            SELECT c.id FROM sub CROSS JOIN LATERAL (
              SELECT p.id FROM pools p WHERE p.parent_id = sub.id AND p.kind = 'hardware' ORDER BY p.id) c
          )
          SELECT id FROM sub
        ) AS hardware_pool_ids,
        v.nic_count,
        (
          WITH RECURSIVE chain(id, parent_id, depth) AS (
            SELECT vp.id, vp.parent_id, 0
            UNION
            SELECT p.id, p.parent_id, chain.depth + 1 FROM chain CROSS JOIN LATERAL (
              SELECT p.id, p.parent_id FROM pools p WHERE p.id = chain.parent_id LIMIT 1) p
            WHERE chain.depth < 64
          )
          SELECT (ARRAY['monitor', 'user', 'admin'])[max(CASE perm.role WHEN 'admin' THEN 3 WHEN 'user' THEN 2 ELSE 1 END)]
          FROM chain CROSS JOIN LATERAL (
            SELECT perm.role FROM permissions perm WHERE perm.pool_id = chain.id AND perm.user_id = p_user LIMIT 1) perm
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

    ALTER FUNCTION herd_quota_claim(integer, integer, text[], bigint, bigint, double precision, bigint, bigint)
      RENAME TO herd_quota_claim_by_joins;
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
        SELECT qu.pool_id, qu.user_id, qu.limits
        FROM unnest(chain) WITH ORDINALITY AS c(id, depth)
        CROSS JOIN LATERAL (
          SELECT qu.pool_id, qu.user_id,
            ARRAY[qu.vcpus, qu.memory_mib, qu.storage_gib, qu.nics, qu.vms]::double precision[] AS limits
          FROM quotas qu WHERE qu.pool_id = c.id AND (qu.user_id IS NULL OR qu.user_id = p_user)
          ORDER BY qu.user_id
        ) qu
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
          -- The quota's pool and the pools below it (most often none).
          IF EXISTS (SELECT 1 FROM pools p WHERE p.parent_id = q.pool_id) THEN
            subtree := ARRAY(
              WITH RECURSIVE sub(id) AS (
                SELECT q.pool_id
                UNION
                SELECT c.id FROM sub CROSS JOIN LATERAL (
                  SELECT p.id FROM pools p WHERE p.parent_id = sub.id ORDER BY p.id) c
              )
              SELECT id FROM sub);
          ELSE
            subtree := ARRAY[q.pool_id];
          END IF;
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
          FROM unnest(subtree) AS s(id)
          CROSS JOIN LATERAL (SELECT x.* FROM pool_usage x WHERE x.pool_id = s.id ORDER BY x.owner_id) x;
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
    END $$;
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`
    DROP FUNCTION herd_quota_claim(integer, integer, text[], bigint, bigint, double precision, bigint, bigint);
    ALTER FUNCTION herd_quota_claim_by_joins(integer, integer, text[], bigint, bigint, double precision, bigint, bigint)
      RENAME TO herd_quota_claim;
    DROP FUNCTION herd_vm_action_context(integer, integer, boolean);
    ALTER FUNCTION herd_vm_action_context_by_joins(integer, integer, boolean) RENAME TO herd_vm_action_context;
    DROP FUNCTION herd_host_set_stamp(integer[]);
    ALTER FUNCTION herd_host_set_stamp_by_hosts(integer[]) RENAME TO herd_host_set_stamp;
    DROP TRIGGER pools_ratio_stamp ON pools;
    DROP TRIGGER hosts_pool_host_stamp ON hosts;
    DROP FUNCTION herd_pool_host_stamp();
    CREATE OR REPLACE FUNCTION herd_host_inventory_version() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
      NEW.inventory_version := nextval('herd_host_inventory_version');
      RETURN NEW;
    END $$;
    DROP FUNCTION herd_pool_host_stamps_bump(integer[]);
    DROP TABLE pool_host_stamps;
  `.execute(db);
}
