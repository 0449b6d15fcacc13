import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import {
  type AliasNode,
  type ColumnNode,
  Kysely,
  type KyselyPlugin,
  type MigrationResultSet,
  Migrator,
  type OperationNode,
  type PluginTransformQueryArgs,
  type PluginTransformResultArgs,
  PostgresDialect,
  sql,
  type TableNode,
} from 'kysely';
import pg from 'pg';
import type { Config } from '../lib/config.js';
import { startEmbeddedPostgres } from '../lib/embedded-postgres.js';
import type { Logger } from '../lib/log.js';
import { createFailoverPool } from '../lib/pg-failover.js';
import { isMultiHostUrl, parsePgUrl } from '../lib/pg-url.js';
import { type DB, migrations } from './index.js';

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

/**
 * Connections a process keeps at most: a few per core (8 on 2 cores; it was 20). PostgreSQL runs its queries on
 * the same cores, so more busy connections than that only contend inside it (the placement benchmark measured
 * ~10% less PostgreSQL CPU per decision with 8 than with 20); requests beyond them wait in the pool's queue.
 * Transactions in herd are short (never around a call to a host), and two connections are held by LISTENs
 * (task worker, alert feed) in a process running every role.
 */
export const DEFAULT_POOL_SIZE = Math.max(8, 4 * os.availableParallelism());

/**
 * A pool on `url`. A libpq multi-host URL (`postgres://a:5432,b:5432/herd?target_session_attrs=read-write`,
 * lib/pg-url.ts) connects to the host that fits, and to another one once that one goes (lib/pg-failover.ts).
 */
export function connect(url: string, options: { max?: number; log?: Logger } = {}): DatabaseHandle {
  const max = options.max ?? DEFAULT_POOL_SIZE;
  const pool = isMultiHostUrl(url)
    ? createFailoverPool(parsePgUrl(url), { max, log: options.log })
    : new pg.Pool({ connectionString: url, max });
  // Connection errors outside a query (the server went away) are logged, not thrown: for idle clients, and for
  // checked-out ones (which would otherwise throw). pg puts the whole client on the error; only the error is
  // logged. Once the handle closes, the server stopping under clients still ending is expected: nothing to say.
  let closing = false;
  const warn = (msg: string) => (err: Error & { code?: string }) => {
    if (!closing) options.log?.warn({ err: Object.assign(new Error(err.message), { code: err.code }) }, msg);
  };
  pool.on('error', warn('idle PostgreSQL client error'));
  pool.on('connect', (client) => client.on('error', warn('PostgreSQL connection error')));
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }), plugins: [new TableWriteWatch()] });
  return {
    db,
    pool,
    url,
    close: () => {
      closing = true;
      return db.destroy();
    },
  };
}

/**
 * Errors that mean PostgreSQL cannot be reached right now (not that the request is wrong): no connection, a
 * connection cut, the server shutting down or starting (SQLSTATE classes 08 and 57P), the pool's connect timeout,
 * no host of a multi-host URL fitting (08001, lib/pg-failover.ts).
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  const e = error as { code?: unknown; message?: unknown };
  const code = typeof e?.code === 'string' ? e.code : '';
  if (/^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EHOSTUNREACH)$/.test(code)) return true;
  if (/^(08...|57P0[1-4])$/.test(code)) return true;
  const message = typeof e?.message === 'string' ? e.message : '';
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/.test(
    message,
  );
}

/** The columns an UPDATE sets; undefined for a DELETE (whole rows go). */
export type TableWriteListener = (columns: readonly string[] | undefined) => void;
const writeListeners = new Map<string, Set<TableWriteListener>>();

/**
 * Calls `listener` whenever this process is about to UPDATE or DELETE rows of `table` through a Kysely query
 * builder (raw `sql` is not looked into): for in-process caches of what the table holds, which then drop what may
 * have changed. Other processes' writes are not seen: such a cache must also expire on its own.
 */
export function onTableWrite(table: keyof DB, listener: TableWriteListener): void {
  const set = writeListeners.get(table) ?? new Set();
  set.add(listener);
  writeListeners.set(table, set);
}

class TableWriteWatch implements KyselyPlugin {
  transformQuery({ node }: PluginTransformQueryArgs) {
    if (node.kind === 'UpdateQueryNode' && node.table) {
      const columns = (node.updates ?? []).map((u) =>
        u.column.kind === 'ColumnNode' ? (u.column as ColumnNode).column.name : '?',
      );
      notifyWrite(node.table, columns);
    } else if (node.kind === 'DeleteQueryNode') {
      for (const from of node.from.froms) notifyWrite(from, undefined);
    }
    return node;
  }

  async transformResult({ result }: PluginTransformResultArgs) {
    return result;
  }
}

function notifyWrite(target: OperationNode, columns: readonly string[] | undefined): void {
  const table = target.kind === 'AliasNode' ? (target as AliasNode).node : target;
  if (table.kind !== 'TableNode') return;
  for (const listener of writeListeners.get((table as TableNode).table.identifier.name) ?? [])
    listener(columns);
}

/**
 * Where the embedded cluster goes when herd runs as root and the postgres user cannot reach the data directory
 * (a checkout under /root, say): one directory per data directory under /var/lib/herd, which herd creates.
 */
export function embeddedFallbackDir(dataDir: string): string {
  const id = createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 12);
  return path.join('/var/lib/herd', `postgres-${id}`, 'postgres');
}

/** Connects to DATABASE_URL, or starts the embedded PostgreSQL under the data directory. */
export async function openDatabase(config: Config, log: Logger): Promise<DatabaseHandle> {
  if (config.databaseUrl) return connect(config.databaseUrl, { log });
  const embedded = await startEmbeddedPostgres(path.join(config.dataDir, 'postgres'), log, {
    fallbackDir: embeddedFallbackDir(config.dataDir),
  });
  const handle = connect(embedded.url, { log });
  return {
    ...handle,
    async close() {
      await handle.close();
      await embedded.stop();
    },
  };
}

/** Session advisory lock key held while migrating ("herdmigr"). */
const MIGRATION_LOCK = 0x686572646d696772n;

/**
 * Applies every pending migration. Several processes starting at once on one database take turns (a session
 * advisory lock): Kysely's own lock needs its tables, and creating those at the same moment races.
 */
export async function migrateToLatest(db: Kysely<any>): Promise<MigrationResultSet> {
  return db.connection().execute(async (conn) => {
    await sql`SELECT pg_advisory_lock(${MIGRATION_LOCK}::bigint)`.execute(conn);
    try {
      return await migrator(conn).migrateToLatest();
    } finally {
      await sql`SELECT pg_advisory_unlock(${MIGRATION_LOCK}::bigint)`.execute(conn);
    }
  });
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
