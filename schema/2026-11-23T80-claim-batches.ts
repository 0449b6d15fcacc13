import { type Kysely, sql } from 'kysely';

// Frozen once released: never edit, add a new migration instead. Imports nothing from the app.

/**
 * VM action contexts and start claims in batches (api/vms/vm-claim.repository.ts): what concurrent requests ask
 * meanwhile goes to PostgreSQL as one statement, so under load one round trip, one snapshot and one commit (one
 * WAL flush) serve many decisions.
 * - hosts.inventory_version: bumped whenever what placement reads of a host (or its hardware pool's ratios)
 *   changes, so that a process may keep host records and read only their allocations with each decision;
 * - herd_vm_action_contexts: herd_vm_action_context (T70) for each request, and for each distinct set of
 *   candidate hardware pools its hosts' ids, inventory versions and allocations, read once for the batch;
 * - herd_host_records: the host records placement ranks, with their inventory version (read in one snapshot);
 * - herd_vm_claims: herd_vm_claim (T70) for each claim in order, in one transaction. A claim sees what the
 *   earlier ones of its batch took (its own transaction's locks never make it wait or skip a host).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    ALTER TABLE hosts ADD COLUMN inventory_version integer NOT NULL DEFAULT 1;

    CREATE FUNCTION herd_host_inventory_version() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
      NEW.inventory_version := OLD.inventory_version + 1;
      RETURN NEW;
    END $$;

    CREATE TRIGGER hosts_inventory_version BEFORE UPDATE ON hosts FOR EACH ROW
      WHEN ((OLD.pool_id, OLD.hostname, OLD.enabled, OLD.state, OLD.cpus, OLD.memory_mib, OLD.reserved_vcpus,
        OLD.reserved_memory_mib, OLD.cpu_allocation_ratio, OLD.ram_allocation_ratio)
        IS DISTINCT FROM (NEW.pool_id, NEW.hostname, NEW.enabled, NEW.state, NEW.cpus, NEW.memory_mib,
        NEW.reserved_vcpus, NEW.reserved_memory_mib, NEW.cpu_allocation_ratio, NEW.ram_allocation_ratio))
      EXECUTE FUNCTION herd_host_inventory_version();

    CREATE FUNCTION herd_pool_inventory_version() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE hosts SET inventory_version = inventory_version + 1 WHERE pool_id = NEW.id;
      RETURN NULL;
    END $$;

    CREATE TRIGGER pools_inventory_version AFTER UPDATE ON pools FOR EACH ROW
      WHEN ((OLD.cpu_allocation_ratio, OLD.ram_allocation_ratio)
        IS DISTINCT FROM (NEW.cpu_allocation_ratio, NEW.ram_allocation_ratio))
      EXECUTE FUNCTION herd_pool_inventory_version();

    -- The hosts of some hardware pools by id: {pools, ids, versions, vcpus, memoryMiB} (allocated), as arrays.
    CREATE FUNCTION herd_host_allocations(p_pools integer[]) RETURNS json
    LANGUAGE sql STABLE AS $$
      SELECT json_build_object('pools', p_pools,
        'ids', coalesce(array_agg(h.id ORDER BY h.id), '{}'),
        'versions', coalesce(array_agg(h.inventory_version ORDER BY h.id), '{}'),
        'vcpus', coalesce(array_agg(coalesce(a.vcpus, 0) ORDER BY h.id), '{}'),
        'memoryMiB', coalesce(array_agg(coalesce(a.memory_mib, 0) ORDER BY h.id), '{}'))
      FROM hosts h LEFT JOIN host_allocations a ON a.host_id = h.id
      WHERE h.pool_id = ANY(p_pools)
    $$;

    -- Hosts as placement's CandidateHost without the allocations, each with its inventory version.
    CREATE FUNCTION herd_host_records(p_ids integer[]) RETURNS json
    LANGUAGE sql STABLE AS $$
      SELECT coalesce(json_agg(json_build_object('version', h.inventory_version, 'id', h.id,
        'hostname', h.hostname, 'enabled', h.enabled, 'state', h.state, 'cpus', h.cpus, 'memoryMiB', h.memory_mib,
        'reservedVcpus', h.reserved_vcpus, 'reservedMemoryMiB', h.reserved_memory_mib,
        'cpuAllocationRatio', h.cpu_allocation_ratio, 'ramAllocationRatio', h.ram_allocation_ratio,
        'poolCpuAllocationRatio', hp.cpu_allocation_ratio, 'poolRamAllocationRatio', hp.ram_allocation_ratio)), '[]')
      FROM hosts h JOIN pools hp ON hp.id = h.pool_id
      WHERE h.id = ANY(p_ids)
    $$;

    -- p: [[vmId, userId, withHosts], ...]. Answers {contexts: [context (without hosts) or null, ...] in the order
    -- asked, hostSets: [herd_host_allocations(pools) for each distinct set of hardware pools asked with hosts]}.
    CREATE FUNCTION herd_vm_action_contexts(p jsonb) RETURNS json
    LANGUAGE plpgsql STABLE AS $$
    BEGIN
      RETURN (
        WITH asked AS MATERIALIZED (
          SELECT r.ord, (r.req->>2)::boolean AS with_hosts,
            herd_vm_action_context((r.req->>0)::integer, (r.req->>1)::integer, false) AS ctx
          FROM jsonb_array_elements(p) WITH ORDINALITY AS r(req, ord)
        ), pool_sets AS (
          SELECT DISTINCT ARRAY(SELECT json_array_elements_text(ctx->'hardware_pool_ids')::integer) AS pools
          FROM asked WHERE with_hosts AND ctx IS NOT NULL
        )
        SELECT json_build_object(
          'contexts', (SELECT coalesce(json_agg(ctx ORDER BY ord), '[]') FROM asked),
          'hostSets', (SELECT coalesce(json_agg(herd_host_allocations(pools)), '[]') FROM pool_sets)));
    END $$;

    -- p: [claim, ...] as herd_vm_claim takes one. Answers herd_vm_claim's outcomes, in the same order.
    CREATE FUNCTION herd_vm_claims(p jsonb) RETURNS jsonb
    LANGUAGE plpgsql AS $$
    DECLARE
      claim jsonb;
      outcomes jsonb[] := '{}';
    BEGIN
      FOR claim IN SELECT e FROM jsonb_array_elements(p) WITH ORDINALITY AS t(e, ord) ORDER BY ord LOOP
        outcomes := outcomes || herd_vm_claim(claim);
      END LOOP;
      RETURN to_jsonb(outcomes);
    END $$;
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`
    DROP FUNCTION herd_vm_claims(jsonb);
    DROP FUNCTION herd_vm_action_contexts(jsonb);
    DROP FUNCTION herd_host_records(integer[]);
    DROP FUNCTION herd_host_allocations(integer[]);
    DROP TRIGGER pools_inventory_version ON pools;
    DROP FUNCTION herd_pool_inventory_version();
    DROP TRIGGER hosts_inventory_version ON hosts;
    DROP FUNCTION herd_host_inventory_version();
    ALTER TABLE hosts DROP COLUMN inventory_version;
  `.execute(db);
}
