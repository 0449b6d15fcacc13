import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestApp, type TestApp } from '../../lib/testing/app.js';
import { insertVm } from '../../lib/testing/fleet.js';
import { authHeader, createUserWithToken } from '../../lib/testing/users.js';

let t: TestApp;
let root: { id: number; token: string };
beforeAll(async () => {
  t = await createTestApp();
  root = await createUserWithToken(t.database.db, { username: 'root', superAdmin: true });
});
afterAll(() => t.close());

const call = (
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
  url: string,
  payload?: object,
  token = root.token,
) => t.app.inject({ method, url, headers: authHeader(token), ...(payload ? { payload } : {}) });
const login = (username: string, password: string) =>
  t.app.inject({ method: 'POST', url: '/api/v1/session', payload: { username, password } });

test('the super-admin adds local users, who log in; the password is stored as argon2id', async () => {
  const res = await call('POST', '/api/v1/users', {
    username: 'lena',
    password: 'lena-password',
    email: 'lena@x.test',
  });
  expect(res.statusCode).toBe(201);
  expect(res.json()).toMatchObject({
    username: 'lena',
    source: 'local',
    isSuperAdmin: false,
    email: 'lena@x.test',
  });
  expect(res.body).not.toContain('password');
  const { password_hash } = await t.database.db
    .selectFrom('users')
    .select('password_hash')
    .where('username', '=', 'lena')
    .executeTakeFirstOrThrow();
  expect(password_hash).toMatch(/^\$argon2id\$/);
  expect((await login('lena', 'lena-password')).statusCode).toBe(200);
  expect(
    (await call('POST', '/api/v1/users', { username: 'lena', password: 'another-one' })).statusCode,
  ).toBe(409);
});

test('bad bodies answer 400 naming the field', async () => {
  for (const [payload, field] of [
    [{ password: 'long enough' }, 'username'],
    [{ username: 'bad name!' }, 'username'],
    [{ username: 'shorty', password: 'short' }, 'password'],
    [{ username: 'x', source: 'kerberos' }, 'source'],
    [{ username: 'x', email: 'not-an-email' }, 'email'],
  ] as const) {
    const res = await call('POST', '/api/v1/users', payload);
    expect(res.statusCode, JSON.stringify(payload)).toBe(400);
    expect(res.json().field).toBe(field);
    expect(res.json().message).toContain(field);
  }
  expect((await call('POST', '/api/v1/users', { username: 'ldapper', source: 'ldap' })).json().error).toBe(
    'ldap_not_configured',
  );
});

test('users change their own password with the current one; the super-admin can reset and disable', async () => {
  const { id, token } = await createUserWithToken(t.database.db, {
    username: 'mo',
    password: 'first-password',
  });
  const wrong = await call(
    'PATCH',
    `/api/v1/users/${id}`,
    { password: 'second-password', currentPassword: 'nope' },
    token,
  );
  expect(wrong.statusCode).toBe(400);
  expect(wrong.json().field).toBe('currentPassword');
  expect(
    (
      await call(
        'PATCH',
        `/api/v1/users/${id}`,
        { password: 'second-password', currentPassword: 'first-password' },
        token,
      )
    ).statusCode,
  ).toBe(200);
  expect((await login('mo', 'second-password')).statusCode).toBe(200);
  expect((await call('PATCH', `/api/v1/users/${id}`, { isSuperAdmin: true }, token)).statusCode).toBe(403);

  expect((await call('PATCH', `/api/v1/users/${id}`, { disabled: true })).json().disabled).toBe(true);
  expect((await call('GET', '/api/v1/me', undefined, token)).statusCode).toBe(401);
  expect((await login('mo', 'second-password')).statusCode).toBe(401);
  expect((await call('PATCH', `/api/v1/users/${root.id}`, { isSuperAdmin: false })).json().error).toBe(
    'self_lockout',
  );
});

test('a user owning VMs is not deleted; others are, and disappear', async () => {
  const owner = await createUserWithToken(t.database.db, { username: 'owner' });
  const pool = (await call('POST', '/api/v1/pools', { name: 'v', kind: 'vm', parentId: 1 })).json().id;
  await insertVm(t.database.db, { poolId: pool, ownerId: owner.id });
  expect((await call('DELETE', `/api/v1/users/${owner.id}`)).json().error).toBe('user_owns_vms');
  const temp = await createUserWithToken(t.database.db, { username: 'temp' });
  expect((await call('DELETE', `/api/v1/users/${temp.id}`)).statusCode).toBe(204);
  expect((await call('GET', `/api/v1/users/${temp.id}`)).statusCode).toBe(404);
  expect((await call('DELETE', `/api/v1/users/${root.id}`)).statusCode).toBe(409);
});
