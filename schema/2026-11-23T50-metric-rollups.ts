import { type Kysely, sql } from 'kysely';

// Frozen once released: never edit, add a new migration instead. Imports nothing from the app.

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    -- Downsampled metrics for long graphs when no InfluxDB is configured: per series of metric_points and
    -- bucket, the mean and the max of its raw values. Counters keep their mean too: the rate between two
    -- buckets' means is the mean rate, so rates come out right without knowing which series count.
    CREATE TABLE metric_rollups (
      series_id integer NOT NULL,
      bucket timestamptz NOT NULL,
      mean double precision NOT NULL,
      max double precision NOT NULL,
      PRIMARY KEY (series_id, bucket)
    );
    CREATE INDEX metric_rollups_bucket ON metric_rollups USING brin (bucket);

    -- How far the rollup job got, per bucket width: buckets before done_until are complete.
    CREATE TABLE metric_rollup_progress (
      step_seconds integer PRIMARY KEY,
      done_until timestamptz NOT NULL
    );
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP TABLE metric_rollup_progress, metric_rollups`.execute(db);
}
