import { type Kysely, sql } from 'kysely';

// Frozen once released: never edit, add a new migration instead. Imports nothing from the app.

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    -- Grants made by the LDAP group mapping are replaced at each login; manual grants are never touched.
    ALTER TABLE permissions
      ADD COLUMN source text NOT NULL DEFAULT 'manual' CHECK (source IN ('manual', 'ldap'));
    -- The directory entry of an LDAP user, found at creation or at the last login.
    ALTER TABLE users ADD COLUMN ldap_dn text;
    CREATE INDEX audit_log_at ON audit_log(at DESC);
    CREATE INDEX vms_owner ON vms(owner_id);
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`
    DROP INDEX vms_owner;
    DROP INDEX audit_log_at;
    ALTER TABLE users DROP COLUMN ldap_dn;
    ALTER TABLE permissions DROP COLUMN source;
  `.execute(db);
}
