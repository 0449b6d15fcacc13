import { type Kysely, sql } from 'kysely';

// Frozen once released: never edit, add a new migration instead. Imports nothing from the app.

/**
 * CPU hard limits: a VM's share of each of its vCPUs (libvirt `<cputune>` quota over period), and a VM pool's
 * ceiling for its VMs (a VM's effective limit is the lower of the two). Null: no limit.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    ALTER TABLE vms ADD COLUMN cpu_limit_percent smallint
      CONSTRAINT vms_cpu_limit_percent_range CHECK (cpu_limit_percent BETWEEN 1 AND 100)
  `.execute(db);
  await sql`
    ALTER TABLE pools ADD COLUMN cpu_limit_percent smallint
      CONSTRAINT pools_cpu_limit_percent_range CHECK (cpu_limit_percent BETWEEN 1 AND 100),
      ADD CONSTRAINT pools_cpu_limit_vm_pools CHECK (cpu_limit_percent IS NULL OR kind = 'vm')
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE pools DROP COLUMN cpu_limit_percent`.execute(db);
  await sql`ALTER TABLE vms DROP COLUMN cpu_limit_percent`.execute(db);
}
