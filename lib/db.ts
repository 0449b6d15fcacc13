import path from 'node:path';
import { Kysely, Migrator, PostgresDialect, type MigrationResultSet } from 'kysely';
import pg from 'pg';
import { type DB, migrations } from '../schema/index.js';
import type { Config } from './config.js';
import { startEmbeddedPostgres } from './embedded-postgres.js';
import type { Logger } from './log.js';

export type { DB };
export type Database = Kysely<DB>;

// int8 and numeric as JS numbers: every such column in herd (MiB, GiB, ids) stays far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));
pg.types.setTypeParser(pg.types.builtins.NUMERIC, (v) => Number(v));

export interface DatabaseHandle {
  db: Database;
  pool: pg.Pool;
  url: string;
  close(): Promise<void>;
}

export function connect(url: string, options: { max?: number; log?: Logger } = {}): DatabaseHandle {
  const pool = new pg.Pool({ connectionString: url, max: options.max ?? 20 });
  pool.on('error', (err) => options.log?.warn({ err }, 'idle PostgreSQL client error'));
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  return { db, pool, url, close: () => db.destroy() };
}

/** Connects to DATABASE_URL, or starts the embedded PostgreSQL under the data directory. */
export async function openDatabase(config: Config, log: Logger): Promise<DatabaseHandle> {
  if (config.databaseUrl) return connect(config.databaseUrl, { log });
  const embedded = await startEmbeddedPostgres(path.join(config.dataDir, 'postgres'), log);
  const handle = connect(embedded.url, { log });
  return {
    ...handle,
    async close() {
      await handle.close();
      await embedded.stop();
    },
  };
}

export async function migrateToLatest(db: Kysely<any>): Promise<MigrationResultSet> {
  return migrator(db).migrateToLatest();
}

export function migrator(db: Kysely<any>): Migrator {
  return new Migrator({ db, provider: { getMigrations: async () => migrations } });
}

/** Applies migrations; throws with the failing migration's name. */
export async function migrateOrThrow(db: Kysely<any>, log: Logger): Promise<void> {
  const { error, results } = await migrateToLatest(db);
  for (const r of results ?? []) {
    if (r.status === 'Success') log.info({ migration: r.migrationName }, 'migration applied');
    if (r.status === 'Error') log.error({ migration: r.migrationName }, 'migration failed');
  }
  if (error) throw error instanceof Error ? error : new Error(String(error));
}
