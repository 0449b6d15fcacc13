import { type Kysely, sql } from 'kysely';

// Frozen once released: never edit, add a new migration instead. Imports nothing from the app.

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    -- Metrics when no InfluxDB is configured. A series is one field of one measurement + tag set, so a
    -- point row is just (series, time, value): 20 bytes of data per value. Tags are stored without
    -- empty values; jsonb compares regardless of key order, so the unique key is canonical.
    CREATE TABLE metric_series (
      id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      measurement text NOT NULL,
      field text NOT NULL,
      tags jsonb NOT NULL DEFAULT '{}',
      UNIQUE (measurement, field, tags)
    );
    CREATE INDEX metric_series_tags ON metric_series USING gin (tags jsonb_path_ops);

    -- Raw points, kept HERD_RAW_RETENTION_HOURS. No foreign key: it would cost a lookup per row on
    -- the hot insert path, and series are never deleted while points refer to them. Rollup tables
    -- (per series and bucket: min, max, sum, count, last) can sit beside this one with the same key.
    CREATE TABLE metric_points (
      series_id integer NOT NULL,
      time timestamptz NOT NULL,
      value double precision NOT NULL,
      PRIMARY KEY (series_id, time)
    );
    -- Retention deletes by time; rows arrive roughly in time order, which is what BRIN needs.
    CREATE INDEX metric_points_time ON metric_points USING brin (time);
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP TABLE metric_points, metric_series`.execute(db);
}
