import { type Kysely, sql } from 'kysely';

// Frozen once released: never edit, add a new migration instead. Imports nothing from the app.

/**
 * The live view shared between herd processes: each ingest process upserts the current summary of the hosts it
 * receives (one row per hostname, the newest arrival wins), so processes without a live view of their own
 * (`--only api`) place VMs from live usage. `published_at` is the database's clock, so readers can ask for what
 * changed since their last read; `last_seen` is the publishing process's arrival time of the host's last values.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    CREATE TABLE live_host_summaries (
      hostname text PRIMARY KEY,
      last_seen timestamptz NOT NULL,
      interval_seconds double precision NOT NULL,
      load1 double precision,
      load5 double precision,
      load15 double precision,
      memory_free_mib double precision,
      memory_used_mib double precision,
      cpu_busy_percent double precision,
      cpu_count integer,
      publisher text NOT NULL,
      published_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX live_host_summaries_published_at ON live_host_summaries (published_at);
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP TABLE live_host_summaries`.execute(db);
}
