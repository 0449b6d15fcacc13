import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { loadConfig } from '../lib/config.js';
import { createLogger } from '../lib/log.js';
import { createRegistry } from '../lib/metrics.js';
import type { Database } from '../schema/db.js';
import { buildApp } from './app.js';
import { apiRoutes } from './routes.js';

/**
 * The OpenAPI document `/api/docs/json` serves, built from the route schemas without a database: the app is
 * built on a pool that is never connected (no route runs), for the build to generate the dashboard's API types.
 */
export async function openApiDocument(): Promise<Record<string, unknown>> {
  const pool = new pg.Pool({ host: '127.0.0.1', port: 1, max: 1 });
  const db: Database = new Kysely({ dialect: new PostgresDialect({ pool }) });
  const config = loadConfig({ HERD_DATA_DIR: '/nonexistent-herd-openapi' });
  const app = await buildApp(
    { config, db, log: createLogger('silent'), registry: createRegistry() },
    apiRoutes,
  );
  try {
    await app.ready();
    return app.swagger() as unknown as Record<string, unknown>;
  } finally {
    await app.close();
    await db.destroy();
  }
}
