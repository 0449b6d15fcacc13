CREATE OR REPLACE FUNCTION public.herd_vm_action_context(p_vm integer, p_user integer, p_hosts boolean)
 RETURNS json
 LANGUAGE plpgsql
 STABLE
AS $function$
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
    END $function$

