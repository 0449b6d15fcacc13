import { createHash } from 'node:crypto';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { buildApp } from '../../api/app.js';
import { apiRoutes } from '../../api/routes.js';
import { LiveView } from '../../ingest/live-view.js';
import { loadConfig } from '../../lib/config.js';
import { connect, type DB } from '../../lib/db.js';
import { createLogger } from '../../lib/log.js';
import { createRegistry } from '../../lib/metrics.js';

/**
 * The API process of the placement benchmark (bench/placement.ts): herd's HTTP API on DATABASE_URL with a live
 * view holding collectd figures for every host, as the ingest role would keep it. Logs its address.
 */
const POOL_SIZE = 20;
const config = loadConfig();
const log = createLogger(config.logLevel);
const database = process.env.BENCH_PREPARED
  ? connectPreparing(config.databaseUrl!)
  : connect(config.databaseUrl!, { log, max: POOL_SIZE });
const liveView = new LiveView();

const hosts = await database.db.selectFrom('hosts').select(['id', 'hostname', 'memory_mib']).execute();
const now = Date.now() / 1000;
for (const h of hosts) {
  const base = { host: h.hostname, time: now, interval: 3600, pluginInstance: '', typeInstance: '' };
  const load = (h.id % 17) / 4;
  liveView.update(
    {
      ...base,
      plugin: 'load',
      type: 'load',
      dsTypes: ['gauge', 'gauge', 'gauge'],
      values: [load, load, load],
    },
    ['shortterm', 'midterm', 'longterm'],
  );
  const freeMiB = h.memory_mib * (0.3 + (h.id % 7) / 10);
  liveView.update(
    {
      ...base,
      plugin: 'memory',
      type: 'memory',
      typeInstance: 'free',
      dsTypes: ['gauge'],
      values: [freeMiB * 1024 * 1024],
    },
    ['value'],
  );
  for (const [state, value] of [
    ['idle', 60 + (h.id % 30)],
    ['user', 40 - (h.id % 30)],
  ] as const) {
    liveView.update(
      {
        ...base,
        plugin: 'cpu',
        pluginInstance: '',
        type: 'percent',
        typeInstance: state,
        dsTypes: ['gauge'],
        values: [value],
      },
      ['value'],
    );
  }
}

const app = await buildApp(
  { config, db: database.db, log, registry: createRegistry(), liveView },
  apiRoutes,
);
const address = await app.listen({ host: '127.0.0.1', port: 0 });
// Its own line (the log level may hide info): the benchmark reads the address from it.
process.stdout.write(`${JSON.stringify({ msg: 'HTTP API listening', address, hosts: hosts.length })}\n`);
process.on('SIGTERM', () => {
  app
    .close()
    .then(() => database.close())
    .finally(() => process.exit(0));
});

/**
 * BENCH_PREPARED=1: a client that names every statement after its text, so PostgreSQL parses and plans each once
 * per connection (then runs its cached plan) — to measure what that would save herd's database client.
 */
function connectPreparing(url: string): { db: Kysely<DB>; close(): Promise<void> } {
  class PreparingClient extends pg.Client {
    override query(config: unknown, values?: unknown, callback?: unknown): any {
      if (typeof config !== 'string') return super.query(config as any, values as any, callback as any);
      const name = createHash('sha1').update(config).digest('base64url');
      return super.query({ name, text: config, values: values as unknown[] }, callback as any);
    }
  }
  const pool = new pg.Pool({ connectionString: url, max: POOL_SIZE, Client: PreparingClient });
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  return { db, close: () => db.destroy() };
}
