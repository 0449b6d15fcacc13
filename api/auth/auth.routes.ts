import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../app.js';
import { HttpError } from '../http/errors.js';
import { errorResponses, errorSchema, idParam, listOf, listQuery } from '../http/schemas.js';
import { authHook } from './auth.hook.js';
import { createdToken, loginAnswer, loginBody, meAnswer, tokenBody, tokenSchema } from './auth.schemas.js';
import {
  issueToken,
  listUserTokens,
  login,
  logout,
  me,
  revokeToken,
  SESSION_COOKIE,
  SESSION_TTL_MS,
} from './auth.service.js';
import { LoginFailures } from './login-failures.js';

/** Login attempts per client address and username per minute. */
export const LOGIN_ATTEMPTS_PER_MINUTE = 10;
/** Failed logins per client address per minute, whatever the usernames. */
export const LOGIN_FAILURES_PER_ADDRESS_PER_MINUTE = 10;
const tags = ['auth'];

/** The auth hook for all of /api/v1, then login/logout, `me` and API tokens. Register it first. */
export async function authRoutes(app: FastifyInstance, deps: AppDeps): Promise<void> {
  authHook(app, deps);
  const failures = new LoginFailures(LOGIN_FAILURES_PER_ADDRESS_PER_MINUTE, 60_000);
  await app.register(rateLimit, {
    global: false,
    errorResponseBuilder: (_req, ctx) =>
      new HttpError(429, 'rate_limited', `too many login attempts: retry in ${Math.ceil(ctx.ttl / 1000)} s`),
  });

  app.post<{ Body: { username: string; password: string } }>(
    '/api/v1/session',
    {
      schema: {
        tags,
        summary: 'Log in: answers a token and sets the session cookie',
        security: [],
        body: loginBody,
        response: { 200: loginAnswer, 429: errorSchema, ...errorResponses },
      },
      config: {
        rateLimit: {
          max: LOGIN_ATTEMPTS_PER_MINUTE,
          timeWindow: 60_000,
          hook: 'preHandler',
          keyGenerator: (req) =>
            `${req.ip}|${String((req.body as { username?: unknown } | undefined)?.username ?? '').toLowerCase()}`,
        },
      },
    },
    async (request, reply) => {
      const wait = failures.blockedFor(request.ip);
      if (wait > 0) {
        reply.header('retry-after', Math.ceil(wait / 1000));
        throw new HttpError(
          429,
          'rate_limited',
          `too many failed logins from this address: retry in ${Math.ceil(wait / 1000)} s`,
        );
      }
      let result: Awaited<ReturnType<typeof login>>;
      try {
        result = await login(deps, request.body.username, request.body.password);
      } catch (err) {
        if (err instanceof HttpError && err.statusCode === 401) failures.record(request.ip);
        throw err;
      }
      reply.setCookie(SESSION_COOKIE, result.token, {
        path: '/',
        httpOnly: true,
        sameSite: 'lax',
        secure: request.protocol === 'https',
        maxAge: SESSION_TTL_MS / 1000,
      });
      return result;
    },
  );

  app.delete(
    '/api/v1/session',
    {
      schema: {
        tags,
        summary: 'Log out: revokes the session',
        response: { 204: { type: 'null' }, ...errorResponses },
      },
    },
    async (request, reply) => {
      if (request.credential.kind === 'session') {
        await logout(deps.db, { sessionId: request.credential.id, userId: request.user.id });
      }
      reply.clearCookie(SESSION_COOKIE, { path: '/' });
      return reply.status(204).send();
    },
  );

  app.get(
    '/api/v1/me',
    { schema: { tags, summary: 'The caller', response: { 200: meAnswer, ...errorResponses } } },
    async (request) => me(deps.db, request.user),
  );

  app.post<{ Body: { name: string; expiresInDays?: number } }>(
    '/api/v1/tokens',
    {
      schema: {
        tags,
        summary: 'Create an API token (shown once)',
        body: tokenBody,
        response: { 201: createdToken, ...errorResponses },
      },
    },
    async (request, reply) =>
      reply.status(201).send(await issueToken(deps.db, request.user.id, request.body)),
  );

  app.get<{ Querystring: { limit: number; offset: number } }>(
    '/api/v1/tokens',
    {
      schema: {
        tags,
        summary: "The caller's live API tokens",
        querystring: listQuery,
        response: { 200: listOf(tokenSchema), ...errorResponses },
      },
    },
    async (request) => listUserTokens(deps.db, request.user, request.query),
  );

  app.delete<{ Params: { id: number } }>(
    '/api/v1/tokens/:id',
    {
      schema: {
        tags,
        summary: 'Revoke an API token',
        params: idParam,
        response: { 204: { type: 'null' }, ...errorResponses },
      },
    },
    async (request, reply) => {
      await revokeToken(deps.db, request.user, request.params.id);
      return reply.status(204).send();
    },
  );
}
