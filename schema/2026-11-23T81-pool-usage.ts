import { type Kysely, sql } from 'kysely';

// Frozen once released: never edit, add a new migration instead. Imports nothing from the app.

/**
 * Usage kept as it changes, so that a quota check reads a few rows instead of counting every VM, NIC and volume of
 * a subtree (README, "Quota semantics": storage for every VM, the rest only while a VM is active):
 * - vms.nic_count and vms.storage_gib: the VM's NICs and the size of its attached volumes, kept by triggers on
 *   vm_nics and volumes;
 * - pool_usage: per pool (its own VMs, not its subtree's) and VM owner, what those VMs hold, kept by a trigger on
 *   vms; `vms_defined` counts them in every state (an owner with a VM in the pool shows in its usage);
 * - herd_active_vm_states(): the active states (api/vms/vm-states.ts ACTIVE_VM_STATES; a test holds them equal,
 *   and herd_quota_claim refuses a caller whose list differs);
 * - herd_quota_claim: as in T70 (same locks, same answers) with usage summed from pool_usage. T70's version is
 *   kept as herd_quota_claim_counted for down().
 * A recount from the raw rows (api/quota/quota.service.ts `recount`) lists any difference; there must be none.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    CREATE FUNCTION herd_active_vm_states() RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
      SELECT ARRAY['starting', 'running', 'stopping', 'suspending', 'paused', 'resuming', 'saving', 'restoring',
        'migrating', 'unknown']::text[]
    $$;

    ALTER TABLE vms ADD COLUMN nic_count integer NOT NULL DEFAULT 0,
      ADD COLUMN storage_gib double precision NOT NULL DEFAULT 0;
    UPDATE vms SET nic_count = n.count
      FROM (SELECT vm_id, count(*) AS count FROM vm_nics GROUP BY vm_id) n WHERE n.vm_id = vms.id;
    UPDATE vms SET storage_gib = s.gib
      FROM (SELECT vm_id, sum(size_gib) AS gib FROM volumes WHERE vm_id IS NOT NULL GROUP BY vm_id) s
      WHERE s.vm_id = vms.id;

    CREATE TABLE pool_usage (
      pool_id integer NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
      owner_id integer NOT NULL,
      vms_defined integer NOT NULL DEFAULT 0,
      vcpus bigint NOT NULL DEFAULT 0,
      memory_mib bigint NOT NULL DEFAULT 0,
      vms integer NOT NULL DEFAULT 0,
      nics bigint NOT NULL DEFAULT 0,
      storage_gib double precision NOT NULL DEFAULT 0,
      PRIMARY KEY (pool_id, owner_id)
    );
    INSERT INTO pool_usage (pool_id, owner_id, vms_defined, vcpus, memory_mib, vms, nics, storage_gib)
    SELECT pool_id, owner_id, count(*), coalesce(sum(vcpus) FILTER (WHERE active), 0),
      coalesce(sum(memory_mib) FILTER (WHERE active), 0), count(*) FILTER (WHERE active),
      coalesce(sum(nic_count) FILTER (WHERE active), 0), sum(storage_gib)
    FROM (SELECT *, state = ANY(herd_active_vm_states()) AS active FROM vms) v
    GROUP BY pool_id, owner_id;

    CREATE FUNCTION herd_pool_usage_add(p_pool integer, p_owner integer, p_defined integer, p_vcpus bigint,
      p_memory_mib bigint, p_vms integer, p_nics bigint, p_storage_gib double precision) RETURNS void
    LANGUAGE sql AS $$
      INSERT INTO pool_usage AS u (pool_id, owner_id, vms_defined, vcpus, memory_mib, vms, nics, storage_gib)
      VALUES (p_pool, p_owner, p_defined, p_vcpus, p_memory_mib, p_vms, p_nics, p_storage_gib)
      ON CONFLICT (pool_id, owner_id) DO UPDATE SET vms_defined = u.vms_defined + EXCLUDED.vms_defined,
        vcpus = u.vcpus + EXCLUDED.vcpus, memory_mib = u.memory_mib + EXCLUDED.memory_mib, vms = u.vms + EXCLUDED.vms,
        nics = u.nics + EXCLUDED.nics, storage_gib = u.storage_gib + EXCLUDED.storage_gib
    $$;

    -- What a VM row adds to its pool and owner's usage is taken off as it was and added as it is.
    CREATE FUNCTION herd_vm_usage() RETURNS trigger
    LANGUAGE plpgsql AS $$
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
    END $$;

    CREATE TRIGGER vms_usage AFTER INSERT OR DELETE ON vms FOR EACH ROW EXECUTE FUNCTION herd_vm_usage();
    CREATE TRIGGER vms_usage_update AFTER UPDATE ON vms FOR EACH ROW
      WHEN (OLD.pool_id <> NEW.pool_id OR OLD.owner_id <> NEW.owner_id OR OLD.vcpus <> NEW.vcpus
        OR OLD.memory_mib <> NEW.memory_mib OR OLD.nic_count <> NEW.nic_count OR OLD.storage_gib <> NEW.storage_gib
        OR (OLD.state = ANY(herd_active_vm_states())) <> (NEW.state = ANY(herd_active_vm_states())))
      EXECUTE FUNCTION herd_vm_usage();

    -- A VM deleted takes its NICs and volumes' sizes off with it (herd_vm_usage): the cascades then find no row.
    CREATE FUNCTION herd_nic_usage() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP <> 'INSERT' THEN
        UPDATE vms SET nic_count = nic_count - 1 WHERE id = OLD.vm_id;
      END IF;
      IF TG_OP <> 'DELETE' THEN
        UPDATE vms SET nic_count = nic_count + 1 WHERE id = NEW.vm_id;
      END IF;
      RETURN NULL;
    END $$;
    CREATE TRIGGER vm_nics_usage AFTER INSERT OR DELETE ON vm_nics FOR EACH ROW EXECUTE FUNCTION herd_nic_usage();
    CREATE TRIGGER vm_nics_usage_update AFTER UPDATE OF vm_id ON vm_nics FOR EACH ROW
      WHEN (OLD.vm_id <> NEW.vm_id) EXECUTE FUNCTION herd_nic_usage();

    CREATE FUNCTION herd_volume_usage() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP <> 'INSERT' AND OLD.vm_id IS NOT NULL THEN
        UPDATE vms SET storage_gib = storage_gib - OLD.size_gib WHERE id = OLD.vm_id;
      END IF;
      IF TG_OP <> 'DELETE' AND NEW.vm_id IS NOT NULL THEN
        UPDATE vms SET storage_gib = storage_gib + NEW.size_gib WHERE id = NEW.vm_id;
      END IF;
      RETURN NULL;
    END $$;
    CREATE TRIGGER volumes_usage AFTER INSERT OR DELETE ON volumes FOR EACH ROW EXECUTE FUNCTION herd_volume_usage();
    CREATE TRIGGER volumes_usage_update AFTER UPDATE OF vm_id, size_gib ON volumes FOR EACH ROW
      WHEN (OLD.vm_id IS DISTINCT FROM NEW.vm_id OR OLD.size_gib <> NEW.size_gib)
      EXECUTE FUNCTION herd_volume_usage();

    ALTER FUNCTION herd_quota_claim(integer, integer, text[], bigint, bigint, double precision, bigint, bigint)
      RENAME TO herd_quota_claim_counted;

    -- T70's quota claim (same arguments, locks and answers) reading usage from pool_usage.
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
    END $$;
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`
    DROP FUNCTION herd_quota_claim(integer, integer, text[], bigint, bigint, double precision, bigint, bigint);
    ALTER FUNCTION herd_quota_claim_counted(integer, integer, text[], bigint, bigint, double precision, bigint, bigint)
      RENAME TO herd_quota_claim;
    DROP TRIGGER volumes_usage_update ON volumes;
    DROP TRIGGER volumes_usage ON volumes;
    DROP FUNCTION herd_volume_usage();
    DROP TRIGGER vm_nics_usage_update ON vm_nics;
    DROP TRIGGER vm_nics_usage ON vm_nics;
    DROP FUNCTION herd_nic_usage();
    DROP TRIGGER vms_usage_update ON vms;
    DROP TRIGGER vms_usage ON vms;
    DROP FUNCTION herd_vm_usage();
    DROP FUNCTION herd_pool_usage_add(integer, integer, integer, bigint, bigint, integer, bigint, double precision);
    DROP TABLE pool_usage;
    ALTER TABLE vms DROP COLUMN storage_gib, DROP COLUMN nic_count;
    DROP FUNCTION herd_active_vm_states();
  `.execute(db);
}
