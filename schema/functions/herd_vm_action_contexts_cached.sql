CREATE OR REPLACE FUNCTION public.herd_vm_action_contexts_cached(p jsonb, p_fresh jsonb)
 RETURNS json
 LANGUAGE plpgsql
 STABLE
AS $function$
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
    END $function$

