import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../app.js';
import { authenticate } from '../auth/auth.service.js';
import { unauthorized } from '../http/errors.js';
import { errorSchema } from '../http/schemas.js';
import { fleetMetrics } from './fleet-metrics.service.js';

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/**
 * `GET /metrics/fleet`: the fleet as Prometheus series, for a scrape job with
 * `authorization: {type: Bearer, credentials: <herd API token>}`. Outside /api/v1 (Prometheus' habit of
 * `/metrics…` paths), so it authenticates here: a bearer token only (no cookie, no login form).
 */
export function fleetMetricsRoutes(app: FastifyInstance, deps: AppDeps): void {
  app.get(
    '/metrics/fleet',
    {
      schema: {
        tags: ['system'],
        summary: 'Hosts, VMs, pools and quotas the token may view, as Prometheus text (bearer token)',
        security: [{ bearer: [] }],
        response: {
          200: {
            description: 'Prometheus text exposition format 0.0.4',
            content: { 'text/plain': { schema: { type: 'string' } } },
          },
          401: errorSchema,
        },
      },
    },
    async (request, reply) => {
      const match = BEARER.exec(request.headers.authorization ?? '');
      const auth = match ? await authenticate(deps.db, match[1]) : null;
      if (!auth) {
        reply.header('www-authenticate', 'Bearer realm="herd"');
        throw unauthorized(
          match ? 'invalid, expired or revoked token' : 'send "Authorization: Bearer <herd API token>"',
        );
      }
      const registry = await fleetMetrics({ db: deps.db, liveView: deps.liveView }, auth.user);
      reply.header('content-type', registry.contentType);
      reply.header('cache-control', 'no-store');
      return registry.metrics();
    },
  );
}
