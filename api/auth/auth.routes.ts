import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AppDeps } from '../app.js';
import { HttpError, unauthorized } from '../http/errors.js';
import { errorResponses, errorSchema, idParam, listOf, listQuery } from '../http/schemas.js';
import { authHook } from './auth.hook.js';
import { createdToken, loginAnswer, loginBody, meAnswer, tokenBody, tokenSchema } from './auth.schemas.js';
import {
  issueToken,
  type LoginResult,
  listUserTokens,
  login,
  logout,
  me,
  negotiateLogin,
  revokeToken,
  SESSION_COOKIE,
  SESSION_TTL_MS,
} from './auth.service.js';
import { createNegotiator } from './kerberos.js';
import { LoginFailures } from './login-failures.js';

/** Login attempts per client address and username per minute. */
export const LOGIN_ATTEMPTS_PER_MINUTE = 10;
/** Failed logins per client address per minute, whatever the usernames. */
export const LOGIN_FAILURES_PER_ADDRESS_PER_MINUTE = 10;
const tags = ['auth'];
const NEGOTIATE = /^Negotiate(\s|$)/i;

/** The auth hook for all of /api/v1, then login/logout, `me` and API tokens. Register it first. */
export async function authRoutes(app: FastifyInstance, deps: AppDeps): Promise<void> {
  authHook(app, deps);
  const failures = new LoginFailures(LOGIN_FAILURES_PER_ADDRESS_PER_MINUTE, 60_000);
  await app.register(rateLimit, {
    global: false,
    errorResponseBuilder: (_req, ctx) =>
      new HttpError(429, 'rate_limited', `too many login attempts: retry in ${Math.ceil(ctx.ttl / 1000)} s`),
  });

  const negotiator = deps.config.kerberos ? await createNegotiator(deps.config.kerberos, deps.log) : null;

  /** One login attempt under the failed-login limit of the address; a success sets the session cookie. */
  async function attempt<T extends LoginResult>(
    request: FastifyRequest,
    reply: FastifyReply,
    logIn: () => Promise<T>,
  ): Promise<T> {
    const wait = failures.blockedFor(request.ip);
    if (wait > 0) {
      reply.header('retry-after', Math.ceil(wait / 1000));
      throw new HttpError(
        429,
        'rate_limited',
        `too many failed logins from this address: retry in ${Math.ceil(wait / 1000)} s`,
      );
    }
    let result: T;
    try {
      result = await logIn();
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
  }

  /**
   * `Authorization: Negotiate <token>` (Kerberos through SPNEGO) logs in, answering the mutual-authentication
   * token in `WWW-Authenticate`; undefined when the request carries no Negotiate header. Without any
   * credentials, and Kerberos configured, the 401 asks for Negotiate (what browsers answer to).
   */
  async function negotiate(request: FastifyRequest, reply: FastifyReply): Promise<LoginResult | undefined> {
    const header = request.headers.authorization;
    if (header === undefined || !NEGOTIATE.test(header)) return undefined;
    if (!negotiator) throw unauthorized('Kerberos sign-on is not configured here (HERD_KERBEROS_KEYTAB)');
    const token = header.slice('Negotiate'.length).trim();
    if (!token) throw challenge(reply, 'the Negotiate header carries no token');
    const { negotiateResponse, ...result } = await attempt(request, reply, () =>
      negotiateLogin(deps, negotiator, token).catch((err) => {
        // Refused, but Kerberos is on offer: the dashboard keeps its button, to try again and say why.
        if (err instanceof HttpError && err.statusCode === 401) throw offered(err.message, { refused: true });
        throw err;
      }),
    );
    if (negotiateResponse) reply.header('www-authenticate', `Negotiate ${negotiateResponse}`);
    return result;
  }

  /**
   * A 401 where Kerberos is configured: `negotiate: true` in the body tells the dashboard it is on offer, and
   * `refused: true` that a token came and was refused (else none came).
   */
  const offered = (message: string, details: { refused?: true } = {}) =>
    new HttpError(401, 'unauthorized', message, { negotiate: true, ...details });
  /** The 401 that asks for Negotiate. */
  const challenge = (reply: FastifyReply, message: string) => {
    reply.header('www-authenticate', 'Negotiate');
    return offered(message);
  };

  app.post<{ Body: { username: string; password: string } }>(
    '/api/v1/session',
    {
      schema: {
        tags,
        summary: 'Log in: answers a token and sets the session cookie',
        description:
          'With `{username, password}`, or with no body and `Authorization: Negotiate <token>` (Kerberos, when ' +
          'configured: then a request without credentials answers 401 with `WWW-Authenticate: Negotiate`).',
        security: [],
        body: loginBody,
        response: { 200: loginAnswer, 429: errorSchema, ...errorResponses },
      },
      // Before the body is validated: a Negotiate login has no body.
      preValidation: async (request, reply) => {
        const result = await negotiate(request, reply);
        if (result) return reply.send(result);
        if (negotiator && request.headers.authorization === undefined && request.body === undefined) {
          throw challenge(
            reply,
            'no credentials: send {username, password} or Authorization: Negotiate (Kerberos)',
          );
        }
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
    async (request, reply) =>
      attempt(request, reply, () => login(deps, request.body.username, request.body.password)),
  );

  app.get(
    '/api/v1/session',
    {
      schema: {
        tags,
        summary: 'Kerberos sign-on: answers a token and sets the session cookie',
        description:
          'For browsers: without credentials, 401 with `WWW-Authenticate: Negotiate`; with ' +
          '`Authorization: Negotiate <token>`, the session of a login. Only when Kerberos is configured ' +
          '(HERD_KERBEROS_KEYTAB); its 401s then carry `negotiate: true` (Kerberos is on offer), and ' +
          '`refused: true` when a token came and was refused.',
        security: [],
        response: { 200: loginAnswer, 429: errorSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      if (!negotiator) {
        throw unauthorized('Kerberos sign-on is not configured here: log in with POST {username, password}');
      }
      const result = await negotiate(request, reply);
      if (!result) throw challenge(reply, 'send Authorization: Negotiate <token> (Kerberos)');
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
