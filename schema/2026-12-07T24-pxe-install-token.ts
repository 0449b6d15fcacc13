import { type Kysely, sql } from 'kysely';

// Frozen once released: never edit, add a new migration instead. Imports nothing from the app.

/**
 * A network install reports back: the install image's command line carries a per-VM URL
 * (`POST /pxe/installed/<token>`) that marks the VM installed. The token is made when herd first serves the
 * iPXE script that names it, and cleared once used.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE vms ADD COLUMN install_token text UNIQUE`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE vms DROP COLUMN install_token`.execute(db);
}
