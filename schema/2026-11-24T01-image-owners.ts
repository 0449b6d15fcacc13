import { type Kysely, sql } from 'kysely';

// Frozen once released: never edit, add a new migration instead. Imports nothing from the app.

/**
 * Who added each install image (api/images/images.service.ts): the catalogue is shared by every pool, so an image
 * is removed only by who added it or the super-admin. Images added before this migration have no one (NULL): only
 * the super-admin removes those.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE images ADD COLUMN created_by integer REFERENCES users(id) ON DELETE SET NULL`.execute(
    db,
  );
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE images DROP COLUMN created_by`.execute(db);
}
