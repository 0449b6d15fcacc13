import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../../api/app.js';
import { attachLive } from './live.js';
import { serveDashboardFiles } from './static.js';

/**
 * The dashboard: its files at `/` (no authentication: the page asks the API for everything) and live updates
 * over socket.io. Registered by `herd serve` next to the API routes.
 */
export async function dashboardRoutes(app: FastifyInstance, deps: AppDeps): Promise<void> {
  await serveDashboardFiles(app);
  attachLive(app, { db: deps.db, log: deps.log, liveView: deps.liveView, events: deps.events });
}
