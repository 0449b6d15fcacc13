import type { FastifyInstance } from 'fastify';
import { buildApp } from '../api/app.js';
import { ensureAdmin } from '../api/auth/auth.service.js';
import { apiRoutes } from '../api/routes.js';
import { type IngestService, startIngest } from '../ingest/ingest-service.js';
import { LiveView } from '../ingest/live-view.js';
import { createMetricsStore, type MetricsStore } from '../ingest/store/metrics-store.js';
import type { Config } from './config.js';
import { type DatabaseHandle, migrateOrThrow, openDatabase } from './db.js';
import type { Logger } from './log.js';
import { createRegistry } from './metrics.js';

export const ROLES = ['ingest', 'api', 'worker'] as const;
export type Role = (typeof ROLES)[number];

export interface RunningHerd {
  database: DatabaseHandle;
  store: MetricsStore;
  liveView: LiveView;
  ingest?: IngestService;
  http?: FastifyInstance;
  /** The bound HTTP address, e.g. http://127.0.0.1:8080 */
  httpUrl?: string;
  stop(): Promise<void>;
}

/** Starts the requested roles of herd on one database. `stop()` is safe to call twice. */
export async function startHerd(
  config: Config,
  log: Logger,
  options: { roles: readonly Role[] },
): Promise<RunningHerd> {
  const database = await openDatabase(config, log);
  const stops: Array<() => Promise<unknown>> = [() => database.close()];
  const stop = async () => {
    while (stops.length) {
      const next = stops.pop()!;
      await next().catch((err) => log.warn({ err }, 'error while stopping'));
    }
  };
  try {
    await migrateOrThrow(database.db, log);
    if (config.adminPassword && (await ensureAdmin(database.db, config.adminPassword))) {
      log.info('created the super-admin "admin" (HERD_ADMIN_PASSWORD)');
    }
    const registry = createRegistry({ defaultMetrics: true });
    const liveView = new LiveView();
    const store = createMetricsStore(config, database.db, log, { registry });
    await store.start();
    stops.push(() => store.stop());
    const running: RunningHerd = { database, store, liveView, stop };

    if (options.roles.includes('ingest')) {
      const ingest = await startIngest({ config, db: database.db, log, registry, store, liveView });
      stops.push(() => ingest.stop());
      running.ingest = ingest;
    }

    if (options.roles.includes('api')) {
      const app = await buildApp(
        {
          config,
          db: database.db,
          log,
          registry,
          store,
          liveView,
          health: { influx: config.influx ? () => store.ping() : undefined, ingest: running.ingest?.healthy },
        },
        apiRoutes,
      );
      stops.push(() => app.close());
      const address = await app.listen({ host: config.http.host, port: config.http.port });
      log.info({ address }, 'HTTP API listening');
      running.http = app;
      running.httpUrl = address;
    }
    return running;
  } catch (err) {
    await stop();
    throw err;
  }
}
