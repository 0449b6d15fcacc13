import { type Kysely, sql } from 'kysely';

// Frozen once released: never edit, add a new migration instead. Imports nothing from the app.

/**
 * Direct Linux boot ("Linux boot options" in oVirt): a VM may boot a kernel and initrd found on its host,
 * with a command line, instead of from its disks. All three null: it boots from disk or network as before.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    ALTER TABLE vms ADD COLUMN boot_kernel text, ADD COLUMN boot_initrd text, ADD COLUMN boot_cmdline text,
      ADD CONSTRAINT vms_boot_kernel_needed CHECK (boot_kernel IS NOT NULL OR (boot_initrd IS NULL AND boot_cmdline IS NULL))
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE vms DROP COLUMN boot_kernel, DROP COLUMN boot_initrd, DROP COLUMN boot_cmdline`.execute(
    db,
  );
}
