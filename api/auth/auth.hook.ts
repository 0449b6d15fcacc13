import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AppDeps } from '../app.js';
import { HttpError, unauthorized } from '../http/errors.js';
import { authenticate, CSRF_HEADER, SESSION_COOKIE } from './auth.service.js';
import type { AuthUser } from './auth-user.js';
import { sameSecret } from './secrets.js';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const BEARER = /^Bearer\s+(\S+)\s*$/i;

/**
 * Every /api/v1 request but the login (POST or GET /api/v1/session) is authenticated by a bearer token or the session cookie, else 401.
 * Cookie-authenticated writes also need the session's CSRF token in `x-csrf-token` (bearer requests cannot be
 * forged by another site, so they are exempt). Must be registered before every /api/v1 route.
 */
export function authHook(app: FastifyInstance, deps: AppDeps): void {
  app.decorateRequest('user', null as unknown as AuthUser);
  app.decorateRequest('credential', null as unknown as FastifyRequest['credential']);
  app.addHook('onRequest', async (request) => {
    // The matched route, not the raw URL: the router decodes %-escapes, so `/api/%761/me` reaches /api/v1/me.
    const route = request.routeOptions.url;
    const path = route ?? request.url.split('?', 1)[0];
    if (!path.startsWith('/api/v1/')) return;
    // Logging in (POST: password or Kerberos; GET: Kerberos for browsers) needs no session.
    if ((request.method === 'POST' || request.method === 'GET') && route === '/api/v1/session') return;

    const header = request.headers.authorization;
    const cookie = request.cookies[SESSION_COOKIE];
    let token: string;
    let via: 'bearer' | 'cookie';
    if (header !== undefined) {
      const match = BEARER.exec(header);
      if (!match) throw unauthorized('the Authorization header must be "Bearer <token>"');
      token = match[1];
      via = 'bearer';
    } else if (cookie) {
      token = cookie;
      via = 'cookie';
    } else {
      throw unauthorized();
    }

    const auth = await authenticate(deps.db, token);
    if (!auth) throw unauthorized('invalid, expired or revoked credentials');
    if (via === 'cookie' && !SAFE_METHODS.has(request.method)) {
      const sent = request.headers[CSRF_HEADER];
      if (typeof sent !== 'string' || !auth.csrfToken || !sameSecret(sent, auth.csrfToken)) {
        throw new HttpError(
          403,
          'csrf_failed',
          `a cookie-authenticated ${request.method} needs the ${CSRF_HEADER} header`,
        );
      }
    }
    request.user = auth.user;
    request.credential = { id: auth.sessionId, kind: auth.kind, via };
  });
}
