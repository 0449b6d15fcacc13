import { type Kysely, sql } from 'kysely';

// Frozen once released: never edit, add a new migration instead. Imports nothing from the app.

/**
 * The balancer (issue 26): its settings on hardware pools (`balancer`, JSON; NULL: the defaults, mode off), the
 * per-VM "do not move" flag, and the hosts' CPU and memory samples the balancer reads its window from — written by
 * whichever worker runs the balancer, so another one taking over (or a restart) keeps the window.
 * Cool-downs and failed-migration back-offs are read from the tasks table (migrate tasks), so they survive too.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    ALTER TABLE pools ADD COLUMN balancer jsonb
      CONSTRAINT pools_balancer_hardware CHECK (balancer IS NULL OR kind = 'hardware')
  `.execute(db);
  await sql`ALTER TABLE vms ADD COLUMN pinned boolean NOT NULL DEFAULT false`.execute(db);
  await sql`
    CREATE TABLE balancer_host_samples (
      host_id integer NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
      at timestamptz NOT NULL,
      cpu_percent real NOT NULL,
      memory_used_mib integer,
      PRIMARY KEY (host_id, at)
    )
  `.execute(db);
  await sql`CREATE INDEX balancer_host_samples_at ON balancer_host_samples (at)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP TABLE balancer_host_samples`.execute(db);
  await sql`ALTER TABLE vms DROP COLUMN pinned`.execute(db);
  await sql`ALTER TABLE pools DROP COLUMN balancer`.execute(db);
}
