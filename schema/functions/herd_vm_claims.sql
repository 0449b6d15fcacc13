CREATE OR REPLACE FUNCTION public.herd_vm_claims(p jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
AS $function$
    DECLARE
      claim jsonb;
      outcomes jsonb[] := '{}';
    BEGIN
      FOR claim IN SELECT e FROM jsonb_array_elements(p) WITH ORDINALITY AS t(e, ord) ORDER BY ord LOOP
        outcomes := outcomes || herd_vm_claim(claim);
      END LOOP;
      RETURN to_jsonb(outcomes);
    END $function$

