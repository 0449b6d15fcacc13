import { type Kysely, sql } from 'kysely';

// Frozen once released: never edit, add a new migration instead. Imports nothing from the app.

/**
 * When someone asked to cancel a running task (a save, restore or live migration: libvirt can abort its job).
 * The worker running it sees it, aborts the host's job, and ends the task `cancelled`. Null: nobody asked.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE tasks ADD COLUMN cancel_requested_at timestamptz`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE tasks DROP COLUMN cancel_requested_at`.execute(db);
}
