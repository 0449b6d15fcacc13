import { type Kysely, sql } from 'kysely';

// Frozen once released: never edit, add a new migration instead. Imports nothing from the app.

/**
 * Every VM action a user asks for (start, shutdown, destroy, suspend, resume, save, restore, migrate, delete) is in
 * the audit log as `vm.<action>`, by that user, with its task. A trigger on the task's insert, so that every path
 * that queues a VM task is covered, in the same transaction and without another round trip on the start path
 * (the claim inserts its task in herd_vm_claim). Tasks herd queues itself (user_id NULL: the quota enforcer) are
 * audited by their caller, with its reason.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    CREATE FUNCTION herd_audit_vm_task() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO audit_log (user_id, action, entity_type, entity_id, after)
      VALUES (NEW.user_id, 'vm.' || NEW.action, 'vm', NEW.target_id::text,
              jsonb_strip_nulls(jsonb_build_object(
                'taskId', NEW.id,
                'from', NEW.args->'from',
                'hostId', NEW.args->'hostId',
                'force', NEW.args->'force')));
      RETURN NULL;
    END $$;
    CREATE TRIGGER tasks_audit_vm AFTER INSERT ON tasks
      FOR EACH ROW WHEN (NEW.target_type = 'vm' AND NEW.user_id IS NOT NULL) EXECUTE FUNCTION herd_audit_vm_task();
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`
    DROP TRIGGER tasks_audit_vm ON tasks;
    DROP FUNCTION herd_audit_vm_task();
  `.execute(db);
}
