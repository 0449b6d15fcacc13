import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestApp, type TestApp } from '../../lib/testing/app.js';
import { authHeader, createUserWithToken } from '../../lib/testing/users.js';
import { LOGIN_ATTEMPTS_PER_MINUTE, LOGIN_FAILURES_PER_ADDRESS_PER_MINUTE } from './auth.routes.js';
import { ensureAdmin } from './auth.service.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
  await createUserWithToken(t.database.db, { username: 'dora', password: 'correct horse battery' });
});
afterAll(() => t.close());

const login = (username: string, password: string, ip = '127.0.0.1') =>
  t.app.inject({
    method: 'POST',
    url: '/api/v1/session',
    payload: { username, password },
    remoteAddress: ip,
  });

function sessionCookie(res: Awaited<ReturnType<typeof login>>): string {
  const cookie = res.cookies.find((c) => c.name === 'herd_session');
  if (!cookie) throw new Error('no session cookie');
  return `herd_session=${cookie.value}`;
}

describe('login', () => {
  test('answers a token and an HttpOnly SameSite=Lax session cookie; the token works as a bearer', async () => {
    const res = await login('dora', 'correct horse battery');
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({
      token: expect.any(String),
      csrfToken: expect.any(String),
      user: { username: 'dora', isSuperAdmin: false },
    });
    const setCookie = String(res.headers['set-cookie']);
    expect(setCookie).toMatch(/herd_session=/);
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/SameSite=Lax/);

    const viaBearer = await t.app.inject({
      method: 'GET',
      url: '/api/v1/me',
      headers: authHeader(body.token),
    });
    expect(viaBearer.json()).toMatchObject({ username: 'dora', source: 'local' });
    const viaCookie = await t.app.inject({
      method: 'GET',
      url: '/api/v1/me',
      headers: { cookie: sessionCookie(res) },
    });
    expect(viaCookie.statusCode).toBe(200);
  });

  test('a wrong password, an unknown user and a user without a password all answer the same 401', async () => {
    await createUserWithToken(t.database.db, { username: 'nopass' });
    for (const [u, p] of [
      ['dora', 'wrong'],
      ['nobody', 'whatever'],
      ['nopass', 'anything'],
    ]) {
      const res = await login(u, p);
      expect(res.statusCode).toBe(401);
      expect(res.json()).toEqual({ error: 'unauthorized', message: 'invalid username or password' });
    }
  });

  test('bad bodies answer 400 naming the field', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/api/v1/session', payload: { username: 'dora' } });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ field: 'password' });
  });

  test(`is rate-limited per client address and username: ${LOGIN_ATTEMPTS_PER_MINUTE} a minute`, async () => {
    for (let i = 0; i < LOGIN_ATTEMPTS_PER_MINUTE; i++)
      expect((await login('eve', 'guess', '10.0.0.9')).statusCode).toBe(401);
    const limited = await login('eve', 'guess', '10.0.0.9');
    expect(limited.statusCode).toBe(429);
    expect(limited.json().error).toBe('rate_limited');
    // The same username from elsewhere is counted apart.
    expect((await login('eve', 'guess', '10.0.0.10')).statusCode).toBe(401);
  });

  test(`failed logins from one address are limited across usernames: ${LOGIN_FAILURES_PER_ADDRESS_PER_MINUTE} a minute`, async () => {
    const address = '10.0.0.20';
    // A successful login does not count.
    expect((await login('dora', 'correct horse battery', address)).statusCode).toBe(200);
    for (let i = 0; i < LOGIN_FAILURES_PER_ADDRESS_PER_MINUTE; i++)
      expect((await login(`sprayed-${i}`, 'Winter2026!', address)).statusCode).toBe(401);
    const limited = await login('sprayed-last', 'Winter2026!', address);
    expect(limited.statusCode).toBe(429);
    expect(limited.json()).toMatchObject({ error: 'rate_limited' });
    expect(limited.json().message).toContain('from this address');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    // Even the right password waits: the address is held, not the username.
    expect((await login('dora', 'correct horse battery', address)).statusCode).toBe(429);
    expect((await login('dora', 'correct horse battery', '10.0.0.21')).statusCode).toBe(200);
  });
});

describe('sessions', () => {
  test('cookie-authenticated writes need the CSRF token; bearer requests do not', async () => {
    const res = await login('dora', 'correct horse battery');
    const { csrfToken, token } = res.json();
    const cookie = sessionCookie(res);
    const post = (headers: Record<string, string>) =>
      t.app.inject({ method: 'POST', url: '/api/v1/tokens', headers, payload: { name: 'script' } });

    const without = await post({ cookie });
    expect(without.statusCode).toBe(403);
    expect(without.json().error).toBe('csrf_failed');
    expect((await post({ cookie, 'x-csrf-token': 'forged' })).statusCode).toBe(403);
    expect((await post({ cookie, 'x-csrf-token': csrfToken })).statusCode).toBe(201);
    expect((await post(authHeader(token))).statusCode).toBe(201);
  });

  test('logout revokes the session: cookie and token stop working', async () => {
    const res = await login('dora', 'correct horse battery');
    const { csrfToken, token } = res.json();
    const cookie = sessionCookie(res);
    const out = await t.app.inject({
      method: 'DELETE',
      url: '/api/v1/session',
      headers: { cookie, 'x-csrf-token': csrfToken },
    });
    expect(out.statusCode).toBe(204);
    expect(String(out.headers['set-cookie'])).toMatch(/herd_session=;/);
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/me', headers: { cookie } })).statusCode).toBe(
      401,
    );
    expect(
      (await t.app.inject({ method: 'GET', url: '/api/v1/me', headers: authHeader(token) })).statusCode,
    ).toBe(401);
  });

  test('401 without credentials, with a malformed header, an unknown token, or an expired session', async () => {
    const me = (headers: Record<string, string>) =>
      t.app.inject({ method: 'GET', url: '/api/v1/me', headers });
    expect((await me({})).statusCode).toBe(401);
    expect((await me({ authorization: 'Basic abc' })).statusCode).toBe(401);
    expect((await me(authHeader('herd_nope'))).statusCode).toBe(401);
    expect((await me({ cookie: 'herd_session=herd_nope' })).statusCode).toBe(401);

    const { token } = (await login('dora', 'correct horse battery')).json();
    await t.database.db
      .updateTable('sessions')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where('kind', '=', 'session')
      .execute();
    expect((await me(authHeader(token))).statusCode).toBe(401);
  });

  test('no spelling of a path gets around authentication', async () => {
    for (const url of [
      '/api/%761/me',
      '/api/v%31/me',
      '/%61pi/v1/me',
      '/api/v1/%6de',
      '/api/v1/me/',
      '/api/v1/me?x=1',
    ]) {
      const res = await t.app.inject({ method: 'GET', url });
      expect([401, 404], url).toContain(res.statusCode);
    }
  });

  test('a disabled user is locked out at once', async () => {
    const { id, token } = await createUserWithToken(t.database.db, { username: 'gone' });
    await t.database.db.updateTable('users').set({ disabled: true }).where('id', '=', id).execute();
    expect(
      (await t.app.inject({ method: 'GET', url: '/api/v1/me', headers: authHeader(token) })).statusCode,
    ).toBe(401);
  });
});

describe('API tokens', () => {
  test('are created (shown once), listed without the secret, stored hashed, revoked', async () => {
    const { token: bootstrap } = await createUserWithToken(t.database.db, { username: 'scripter' });
    const created = await t.app.inject({
      method: 'POST',
      url: '/api/v1/tokens',
      headers: authHeader(bootstrap),
      payload: { name: 'ci', expiresInDays: 7 },
    });
    expect(created.statusCode).toBe(201);
    const { id, token, expiresAt } = created.json();
    expect(new Date(expiresAt).getTime() - Date.now()).toBeGreaterThan(6.9 * 86400_000);

    const stored = await t.database.db
      .selectFrom('sessions')
      .select('token_hash')
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    expect(stored.token_hash).not.toContain(token);
    expect(stored.token_hash).toMatch(/^[0-9a-f]{64}$/);

    const list = await t.app.inject({ method: 'GET', url: '/api/v1/tokens', headers: authHeader(token) });
    expect(
      list
        .json()
        .items.map((x: { name: string }) => x.name)
        .sort(),
    ).toEqual(['ci', 'test']);
    expect(list.body).not.toContain(token);

    // Another user cannot revoke it: it does not exist for them.
    const { token: other } = await createUserWithToken(t.database.db, { username: 'other' });
    expect(
      (await t.app.inject({ method: 'DELETE', url: `/api/v1/tokens/${id}`, headers: authHeader(other) }))
        .statusCode,
    ).toBe(404);

    expect(
      (await t.app.inject({ method: 'DELETE', url: `/api/v1/tokens/${id}`, headers: authHeader(bootstrap) }))
        .statusCode,
    ).toBe(204);
    expect(
      (await t.app.inject({ method: 'GET', url: '/api/v1/me', headers: authHeader(token) })).statusCode,
    ).toBe(401);
    expect(
      (await t.app.inject({ method: 'DELETE', url: `/api/v1/tokens/${id}`, headers: authHeader(bootstrap) }))
        .statusCode,
    ).toBe(404);
  });

  test('bad bodies answer 400 naming the field', async () => {
    const { token } = await createUserWithToken(t.database.db, { username: 'badbody' });
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/tokens',
      headers: authHeader(token),
      payload: { name: 'x', expiresInDays: 99999 },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().field).toBe('expiresInDays');
  });
});

test('ensureAdmin creates the super-admin once and never resets its password', async () => {
  expect(await ensureAdmin(t.database.db, 'first-password')).toBe(true);
  expect(await ensureAdmin(t.database.db, 'second-password')).toBe(false);
  expect((await login('admin', 'second-password')).statusCode).toBe(401);
  const res = await login('admin', 'first-password');
  expect(res.json().user).toMatchObject({ username: 'admin', isSuperAdmin: true });
});
