import type { FastifyInstance } from 'fastify';
import { type AppDeps, buildApp, type RoutePlugin } from '../../api/app.js';
import { apiRoutes } from '../../api/routes.js';
import type { DatabaseHandle } from '../../schema/db.js';
import { loadConfig } from '../config.js';
import { createLogger } from '../log.js';
import { createRegistry } from '../metrics.js';
import { createTestDatabase } from './db.js';

export interface TestApp {
  app: FastifyInstance;
  database: DatabaseHandle;
  deps: AppDeps;
  close(): Promise<void>;
}

/** The real HTTP app on a fresh database of its own, for `app.inject` (no port opened). */
export async function createTestApp(
  options: { routes?: RoutePlugin[]; env?: NodeJS.ProcessEnv; deps?: Partial<AppDeps> } = {},
): Promise<TestApp> {
  const database = await createTestDatabase();
  const config = loadConfig({ HERD_DATA_DIR: '/nonexistent-herd-test', ...options.env });
  const log = createLogger(process.env.HERD_TEST_LOG_LEVEL ?? 'silent');
  const deps: AppDeps = { config, db: database.db, log, registry: createRegistry(), ...options.deps };
  const app = await buildApp(deps, options.routes ?? apiRoutes);
  await app.ready();
  return {
    app,
    database,
    deps,
    async close() {
      await app.close();
      await database.close();
    },
  };
}
