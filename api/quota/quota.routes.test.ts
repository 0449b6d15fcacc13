import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestApp, type TestApp } from '../../lib/testing/app.js';
import { insertVm } from '../../lib/testing/fleet.js';
import { authHeader, createPool, createUserWithToken, grantRole } from '../../lib/testing/users.js';
import { apiRoutes } from '../routes.js';
import { claim } from './quota.service.js';

let t: TestApp;
let root: { id: number; token: string };
let ursula: { id: number; token: string };
let vince: { id: number; token: string };
let hw: number;
let vmPool: number;

beforeAll(async () => {
  t = await createTestApp({
    routes: [
      ...apiRoutes,
      // What a VM start does, to see a refusal as the API answers it.
      (app, { db }) =>
        void app.post<{ Body: { poolId: number; vcpus: number } }>('/api/v1/test-claim', async (request) => {
          await db.transaction().execute((trx) =>
            claim(trx, {
              poolId: request.body.poolId,
              userId: request.user.id,
              delta: { vcpus: request.body.vcpus },
            }),
          );
          return { ok: true };
        }),
    ],
  });
  const db = t.database.db;
  root = await createUserWithToken(db, { username: 'root', superAdmin: true });
  ursula = await createUserWithToken(db, { username: 'ursula' });
  vince = await createUserWithToken(db, { username: 'vince' });
  hw = await createPool(db, { name: 'hw' });
  vmPool = await createPool(db, { name: 'vms', kind: 'vm', parentId: hw });
  await grantRole(db, hw, ursula.id, 'user');
  await grantRole(db, hw, vince.id, 'user');
});
afterAll(() => t.close());

const call = (method: 'GET' | 'PUT' | 'DELETE' | 'POST', url: string, payload?: object, token = root.token) =>
  t.app.inject({ method, url, headers: authHeader(token), ...(payload ? { payload } : {}) });

test('quotas per user and per pool: a field left out is unlimited; a refusal names resource, limit, usage, request', async () => {
  const put = await call('PUT', `/api/v1/pools/${hw}/quotas/${ursula.id}`, { vcpus: 4, memoryMiB: 8192 });
  expect(put.statusCode).toBe(200);
  expect(put.json()).toEqual({
    poolId: hw,
    userId: ursula.id,
    vcpus: 4,
    memoryMiB: 8192,
    storageGiB: null,
    nics: null,
    vms: null,
  });
  expect((await call('PUT', `/api/v1/pools/${hw}/quota`, { vms: 10 })).json()).toMatchObject({
    userId: null,
    vms: 10,
    vcpus: null,
  });

  await insertVm(t.database.db, { poolId: vmPool, ownerId: ursula.id, state: 'running', vcpus: 3 });
  const refused = await call('POST', '/api/v1/test-claim', { poolId: vmPool, vcpus: 2 }, ursula.token);
  expect(refused.statusCode).toBe(409);
  expect(refused.json()).toEqual({
    error: 'quota_exceeded',
    message: expect.stringContaining('vcpus'),
    resource: 'vcpus',
    limit: 4,
    used: 3,
    requested: 2,
    scope: 'user',
    poolId: hw,
    userId: ursula.id,
  });
  expect(
    (await call('POST', '/api/v1/test-claim', { poolId: vmPool, vcpus: 1 }, ursula.token)).statusCode,
  ).toBe(200);

  const listed = await call('GET', `/api/v1/pools/${hw}/quotas`);
  expect(listed.json().items.map((q: { userId: number | null }) => q.userId)).toEqual([null, ursula.id]);
  expect((await call('DELETE', `/api/v1/pools/${hw}/quotas/${ursula.id}`)).statusCode).toBe(204);
  expect((await call('DELETE', `/api/v1/pools/${hw}/quotas/${ursula.id}`)).statusCode).toBe(404);
  expect(
    (await call('POST', '/api/v1/test-claim', { poolId: vmPool, vcpus: 100 }, ursula.token)).statusCode,
  ).toBe(200);
});

test('bad quota bodies answer 400 naming the field', async () => {
  for (const [payload, field] of [
    [{ vcpus: -1 }, 'vcpus'],
    [{ memoryMiB: 'lots' }, 'memoryMiB'],
    [{ vms: 1.5 }, 'vms'],
  ] as const) {
    const res = await call('PUT', `/api/v1/pools/${hw}/quotas/${vince.id}`, payload);
    expect(res.statusCode).toBe(400);
    expect(res.json().field).toBe(field);
  }
  expect((await call('PUT', `/api/v1/pools/${hw}/quotas/99999`, { vcpus: 1 })).statusCode).toBe(404);
});

test('usage: per user and in total; a `user` sees the total and its own line only; the reconciler agrees', async () => {
  await insertVm(t.database.db, {
    poolId: vmPool,
    ownerId: vince.id,
    state: 'paused',
    vcpus: 2,
    memoryMiB: 2048,
    volumesGiB: [40],
  });
  const all = (await call('GET', `/api/v1/pools/${hw}/usage`)).json();
  expect(all.total).toMatchObject({
    vcpus: { used: 5, limit: null },
    vms: { used: 2, limit: 10 },
    storageGiB: { used: 40, limit: null },
  });
  expect(all.users.map((x: { username: string }) => x.username)).toEqual(['ursula', 'vince']);

  const own = (await call('GET', `/api/v1/pools/${vmPool}/usage`, undefined, vince.token)).json();
  expect(own.users).toEqual([
    expect.objectContaining({ username: 'vince', vcpus: { used: 2, limit: null } }),
  ]);
  expect(own.total.vms).toEqual({ used: 2, limit: 10 });

  const reconcile = await call('GET', '/api/v1/quota/reconcile');
  expect(reconcile.json()).toMatchObject({ differences: [] });
  expect(reconcile.json().vms).toBe(2);
});
