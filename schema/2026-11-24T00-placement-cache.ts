import { type Kysely, sql } from 'kysely';

// Frozen once released: never edit, add a new migration instead. Imports nothing from the app.

/**
 * Host allocations kept per process between decisions (api/vms/vm-claim.repository.ts), the way a scheduler keeps
 * host state: a decision ranks hosts from allocations read a moment ago, and the claim checks the room again under
 * the host's lock, as it always did. What placement filters on besides room must never be stale, so:
 * - hosts.inventory_version (T80) now comes from one sequence, on insert as on every inventory change, so a set of
 *   hardware pools is stamped by the highest version of its hosts and their count: an added or changed host
 *   raises the first, a removed one lowers the second. (Nothing shared is written: a stamp kept on the pool row
 *   would make every host update of a pool wait on the others.)
 * - herd_vm_action_contexts_cached: herd_vm_action_contexts (T80) told which pool sets the caller holds fresh, with
 *   their stamps. It answers every stamp, and the allocations only of the sets not held or whose stamp moved. (It
 *   repeats T80's few lines rather than calling it: that costs 17 % more per call.)
 * - herd_host_set_stamp: a set's stamp, '<highest inventory version>:<hosts>'.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    CREATE SEQUENCE herd_host_inventory_version;
    SELECT setval('herd_host_inventory_version', greatest((SELECT max(inventory_version) FROM hosts), 1));
    ALTER TABLE hosts ALTER COLUMN inventory_version SET DEFAULT nextval('herd_host_inventory_version');

    CREATE OR REPLACE FUNCTION herd_host_inventory_version() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
      NEW.inventory_version := nextval('herd_host_inventory_version');
      RETURN NEW;
    END $$;

    CREATE FUNCTION herd_host_set_stamp(p_pools integer[]) RETURNS text
    LANGUAGE sql STABLE AS $$
      SELECT coalesce(max(inventory_version), 0) || ':' || count(*) FROM hosts WHERE pool_id = ANY(p_pools)
    $$;

    -- p: [[vmId, userId, withHosts], ...] as herd_vm_action_contexts (T80) takes it; p_fresh: {"<pool ids joined by
    -- commas>": stamp, ...}, the pool sets whose allocations the caller holds and still trusts. Answers {contexts
    -- (as herd_vm_action_contexts), stamps: {"<pool set>": stamp} for every set asked with hosts, hostSets:
    -- [herd_host_allocations(pools) for the sets asked with hosts that are not in p_fresh with that stamp]}.
    CREATE FUNCTION herd_vm_action_contexts_cached(p jsonb, p_fresh jsonb) RETURNS json
    LANGUAGE plpgsql STABLE AS $fn$
    BEGIN
      RETURN (
        WITH asked AS MATERIALIZED (
          SELECT r.ord, (r.req->>2)::boolean AS with_hosts,
            herd_vm_action_context((r.req->>0)::integer, (r.req->>1)::integer, false) AS ctx
          FROM jsonb_array_elements(p) WITH ORDINALITY AS r(req, ord)
        ), pool_sets AS MATERIALIZED (
          SELECT s.pools, array_to_string(s.pools, ',') AS key,
            herd_host_set_stamp(s.pools) AS stamp
          FROM (
            SELECT DISTINCT ARRAY(SELECT json_array_elements_text(ctx->'hardware_pool_ids')::integer) AS pools
            FROM asked WHERE with_hosts AND ctx IS NOT NULL
          ) s
        )
        SELECT json_build_object(
          'contexts', (SELECT coalesce(json_agg(ctx ORDER BY ord), '[]') FROM asked),
          'stamps', (SELECT coalesce(json_object_agg(key, stamp), '{}') FROM pool_sets),
          'hostSets', (SELECT coalesce(json_agg(herd_host_allocations(pools)), '[]') FROM pool_sets
            WHERE p_fresh->>key IS DISTINCT FROM stamp)));
    END $fn$;
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`
    DROP FUNCTION herd_vm_action_contexts_cached(jsonb, jsonb);
    DROP FUNCTION herd_host_set_stamp(integer[]);
    CREATE OR REPLACE FUNCTION herd_host_inventory_version() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
      NEW.inventory_version := OLD.inventory_version + 1;
      RETURN NEW;
    END $$;
    ALTER TABLE hosts ALTER COLUMN inventory_version SET DEFAULT 1;
    DROP SEQUENCE herd_host_inventory_version;
  `.execute(db);
}
