import { type Kysely, sql } from 'kysely';

// Frozen once released: never edit, add a new migration instead. Imports nothing from the app.

/**
 * Host allocations kept per process between decisions (api/vms/vm-claim.repository.ts), the way a scheduler keeps
 * host state: a decision ranks hosts from allocations read a moment ago, and the claim checks the room again under
 * the host's lock, as it always did. What placement filters on besides room must never be stale, so:
 * - pools.hosts_version: bumped whenever a host of the pool is added, removed, moved, or its inventory version
 *   changes (T80: enabled, state, sizes, reservations, ratios, the pool's ratios). A set of hardware pools is
 *   stamped with the sum of its pools' versions: it only grows.
 * - herd_vm_action_contexts_cached: herd_vm_action_contexts (T80) told which pool sets the caller holds fresh, with
 *   their stamps. It answers every stamp, and the allocations only of the sets not held or whose stamp moved. (It
 *   repeats T80's few lines rather than calling it: that costs 17 % more per call.)
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    ALTER TABLE pools ADD COLUMN hosts_version bigint NOT NULL DEFAULT 0;

    CREATE FUNCTION herd_pool_hosts_version() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE pools SET hosts_version = hosts_version + 1
      WHERE id IN (CASE WHEN TG_OP <> 'INSERT' THEN OLD.pool_id END, CASE WHEN TG_OP <> 'DELETE' THEN NEW.pool_id END);
      RETURN NULL;
    END $$;

    CREATE TRIGGER hosts_pool_version AFTER INSERT OR DELETE ON hosts FOR EACH ROW
      EXECUTE FUNCTION herd_pool_hosts_version();
    CREATE TRIGGER hosts_pool_version_update AFTER UPDATE ON hosts FOR EACH ROW
      WHEN (OLD.inventory_version <> NEW.inventory_version OR OLD.pool_id <> NEW.pool_id)
      EXECUTE FUNCTION herd_pool_hosts_version();

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
            (SELECT sum(hosts_version) FROM pools WHERE id = ANY(s.pools))::bigint AS stamp
          FROM (
            SELECT DISTINCT ARRAY(SELECT json_array_elements_text(ctx->'hardware_pool_ids')::integer) AS pools
            FROM asked WHERE with_hosts AND ctx IS NOT NULL
          ) s
        )
        SELECT json_build_object(
          'contexts', (SELECT coalesce(json_agg(ctx ORDER BY ord), '[]') FROM asked),
          'stamps', (SELECT coalesce(json_object_agg(key, stamp), '{}') FROM pool_sets),
          'hostSets', (SELECT coalesce(json_agg(herd_host_allocations(pools)), '[]') FROM pool_sets
            WHERE (p_fresh->>key)::bigint IS DISTINCT FROM stamp)));
    END $fn$;
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`
    DROP FUNCTION herd_vm_action_contexts_cached(jsonb, jsonb);
    DROP TRIGGER hosts_pool_version_update ON hosts;
    DROP TRIGGER hosts_pool_version ON hosts;
    DROP FUNCTION herd_pool_hosts_version();
    ALTER TABLE pools DROP COLUMN hosts_version;
  `.execute(db);
}
