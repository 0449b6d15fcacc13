import type { EventEmitter } from 'node:events';
import type { ValidatorFactory } from '@fastify/ajv-compiler';
import fastifyCookie from '@fastify/cookie';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyRequest,
} from 'fastify';
import type { Registry } from 'prom-client';
import type { LiveReader } from '../ingest/live-view.js';
import type { MetricsStore } from '../ingest/store/metrics-store.js';
import { QueryError } from '../ingest/store/range-query.js';
import type { Rollups } from '../ingest/store/rollups.js';
import type { Config } from '../lib/config.js';
import type { Logger } from '../lib/log.js';
import { type Database, isDatabaseUnavailable } from '../schema/db.js';
import type { HostConnections } from './hosts/driver/index.js';
import { HttpError, isPostgresError } from './http/errors.js';
import { buildValidator, typeMessage } from './http/validation.js';

/** What the HTTP app needs from the rest of herd. Optional parts are absent when their role is not running. */
export interface AppDeps {
  config: Config;
  db: Database;
  log: Logger;
  registry: Registry;
  /** The metrics store (query side for graphs). */
  store?: MetricsStore;
  /** Latest figures per host and guest: the process's ingest live view, with what other processes published. */
  liveView?: LiveReader;
  /** Downsampled metrics that long graphs read (ingest/store/rollups.ts). */
  rollups?: Rollups;
  /** The process's one driver per libvirt host (api/hosts/driver): API, worker and monitor must share it. */
  hostConnections?: HostConnections;
  /** Host and VM state changes (`host.state`, `vm.state`: api/hosts/host-events.ts), for live pushes. */
  events?: EventEmitter;
  /** Health of the parts outside the database, each answering quickly. */
  health?: { influx?: () => Promise<boolean>; ingest?: () => boolean };
}

export type RoutePlugin = (app: FastifyInstance, deps: AppDeps) => Promise<void> | void;

export { isDatabaseUnavailable };

/**
 * The request field PostgreSQL refused, when it can be told: text with a NUL character (SQLSTATE 22021 in a
 * text column, 22P05 in a jsonb one), which PostgreSQL cannot store, is found in the body or query string.
 */
function fieldOf(request: FastifyRequest, sqlstate: string): string | undefined {
  if (sqlstate !== '22021' && sqlstate !== '22P05') return undefined;
  for (const [part, data] of [
    ['body', request.body],
    ['querystring', request.query],
  ] as const) {
    const stack: Array<[unknown, string]> = [[data, '']];
    while (stack.length) {
      const [value, path] = stack.pop()!;
      if (typeof value === 'string' && value.includes('\0')) return path ? path.slice(1) : part;
      if (value !== null && typeof value === 'object')
        for (const [key, child] of Object.entries(value)) stack.push([child, `${path}.${key}`]);
    }
  }
  return undefined;
}

/** On every answer: no MIME sniffing, never framed, no referrer to other sites. */
const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'same-origin',
};
/**
 * The dashboard loads only herd's own scripts, styles and connections (socket.io is same-origin) and may not
 * be framed. No 'unsafe-eval': vega draws with its expression interpreter (`ast: true`, vega-interpreter), not
 * with `Function`; `unsafe-inline` styles for the styles vega writes into its SVG.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * Builds the Fastify app: schemas and OpenAPI on every route, one error handler, health and metrics.
 * `routes` are the domain route modules (each registers its own paths under /api/v1).
 */
export async function buildApp(deps: AppDeps, routes: RoutePlugin[] = []): Promise<FastifyInstance> {
  const app: FastifyInstance = Fastify({
    loggerInstance: deps.log.child({ part: 'http' }) as FastifyBaseLogger,
    bodyLimit: 1024 * 1024,
    trustProxy: false,
    ajv: { customOptions: { removeAdditional: true, useDefaults: true, allErrors: false } },
    schemaController: {
      compilersFactory: { buildValidator: buildValidator as unknown as ValidatorFactory },
    },
  });

  await app.register(fastifyCookie);
  await app.register(fastifySwagger, {
    openapi: {
      // The route schemas are JSON Schema 2020-12 (numeric exclusiveMinimum, type arrays): OpenAPI 3.1's dialect.
      openapi: '3.1.0',
      info: { title: 'herd', version: '0.1.0', description: 'Governs a fleet of libvirt hosts.' },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer' },
          cookie: { type: 'apiKey', in: 'cookie', name: 'herd_session' },
        },
      },
      security: [{ bearer: [] }, { cookie: [] }],
    },
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/api/docs' });

  app.setErrorHandler((error: FastifyError | HttpError, request, reply) => {
    if (error instanceof HttpError) {
      return reply
        .status(error.statusCode)
        .send({ error: error.code, message: error.message, ...error.details });
    }
    if (error instanceof QueryError) {
      return reply.status(400).send({ error: 'bad_query', message: error.message });
    }
    if ((error as FastifyError).validation) {
      const first = (error as FastifyError).validation![0];
      const where = (error as FastifyError).validationContext ?? 'body';
      const field =
        (first?.params as { missingProperty?: string })?.missingProperty ??
        first?.instancePath.replace(/^\//, '').replaceAll('/', '.');
      const message =
        first?.keyword === 'type'
          ? typeMessage(String((first.params as { type: unknown }).type))
          : first?.message;
      return reply.status(400).send({
        error: 'bad_request',
        message: `${where}${field ? `.${field}` : ''}: ${message}`,
        field,
      });
    }
    if (isDatabaseUnavailable(error)) {
      // PostgreSQL down or restarting: the client may retry; herd keeps running and serves again once it is back.
      request.log.warn({ err: (error as Error).message, url: request.url }, 'database unavailable');
      reply.header('retry-after', 5);
      return reply
        .status(503)
        .send({ error: 'unavailable', message: 'the database is unavailable; try again shortly' });
    }
    if (isPostgresError(error) && /^22/.test(error.code)) {
      // PostgreSQL's data exceptions (a number past its column, text that is no number, a NUL character): the
      // request's fault. Its text (tables, columns, types, the value) stays in the log.
      request.log.warn(
        { sqlstate: error.code, err: error.message, url: request.url, method: request.method },
        'request refused by PostgreSQL',
      );
      const field = fieldOf(request, error.code);
      return reply.status(400).send({
        error: 'bad_value',
        message: `${field ? `${field}: ` : ''}a value the database cannot store (too long, out of range, or holding a NUL character)`,
        ...(field ? { field } : {}),
      });
    }
    const status = isPostgresError(error) ? 500 : ((error as FastifyError).statusCode ?? 500);
    if (status < 500) {
      return reply.status(status).send({ error: error.code ?? 'bad_request', message: error.message });
    }
    request.log.error({ err: error, url: request.url, method: request.method }, 'request failed');
    return reply.status(500).send({ error: 'internal', message: 'internal error' });
  });
  app.addHook('onSend', async (request, reply) => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) reply.header(name, value);
    // The OpenAPI explorer (swagger-ui) sets its own policy for its inline scripts.
    if (!request.url.startsWith('/api/docs'))
      reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
  });
  app.setNotFoundHandler((request, reply) =>
    reply
      .status(404)
      .send({ error: 'not_found', message: `${request.method} ${request.url.split('?')[0]} not found` }),
  );

  app.get(
    '/api/health',
    {
      schema: {
        tags: ['system'],
        security: [],
        response: {
          '2xx': {
            type: 'object',
            properties: {
              ok: { type: 'boolean' },
              database: { type: 'boolean' },
              influx: { type: ['boolean', 'null'] },
              ingest: { type: ['boolean', 'null'] },
            },
          },
        },
      },
    },
    async (_request, reply) => {
      const database = await deps.db
        .selectNoFrom((eb) => eb.val(1).as('one'))
        .execute()
        .then(
          () => true,
          () => false,
        );
      const influx = deps.health?.influx ? await deps.health.influx().catch(() => false) : null;
      const ingest = deps.health?.ingest ? deps.health.ingest() : null;
      const ok = database && influx !== false && ingest !== false;
      return reply.status(ok ? 200 : 503).send({ ok, database, influx, ingest });
    },
  );

  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    reply.header('content-type', deps.registry.contentType);
    return deps.registry.metrics();
  });

  for (const route of routes) await route(app, deps);
  return app;
}
