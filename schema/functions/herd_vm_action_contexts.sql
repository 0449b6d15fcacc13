CREATE OR REPLACE FUNCTION public.herd_vm_action_contexts(p jsonb)
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
        ), pool_sets AS (
          SELECT DISTINCT ARRAY(SELECT json_array_elements_text(ctx->'hardware_pool_ids')::integer) AS pools
          FROM asked WHERE with_hosts AND ctx IS NOT NULL
        )
        SELECT json_build_object(
          'contexts', (SELECT coalesce(json_agg(ctx ORDER BY ord), '[]') FROM asked),
          'hostSets', (SELECT coalesce(json_agg(herd_host_allocations(pools)), '[]') FROM pool_sets)));
    END $function$

