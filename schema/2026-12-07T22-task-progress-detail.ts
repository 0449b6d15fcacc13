import { type Kysely, sql } from 'kysely';

// Frozen once released: never edit, add a new migration instead. Imports nothing from the app.

/**
 * What a task's progress was measured from, when the host reports it: for a save, restore or live migration,
 * libvirt's job info (`{source: "libvirt", operation, dataProcessedBytes, dataTotalBytes}`). Null: fixed steps.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE tasks ADD COLUMN progress_detail jsonb`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE tasks DROP COLUMN progress_detail`.execute(db);
}
