import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestApp, type TestApp } from '../../lib/testing/app.js';
import { insertHost, insertVm } from '../../lib/testing/fleet.js';
import { authHeader, createPool, createUserWithToken, grantRole } from '../../lib/testing/users.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

test('a user collects pools, hosts and VMs it may see; only it sees the collection; lost access hides members', async () => {
  const db = t.database.db;
  const owner = await createUserWithToken(db, { username: 'owner' });
  const other = await createUserWithToken(db, { username: 'other', superAdmin: true });
  const call = (
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    url: string,
    payload?: object,
    token = owner.token,
  ) => t.app.inject({ method, url, headers: authHeader(token), ...(payload ? { payload } : {}) });

  const hw = await createPool(db, { name: 'hw' });
  const vms = await createPool(db, { name: 'vms', kind: 'vm', parentId: hw });
  await grantRole(db, hw, owner.id, 'monitor');
  const host = await insertHost(db, { poolId: hw, cpus: 8, memoryMiB: 8192, hostname: 'node1' });
  const vm = await insertVm(db, { poolId: vms, ownerId: other.id, name: 'web' });
  const hidden = await createPool(db, { name: 'hidden' });

  const created = await call('POST', '/api/v1/smart-pools', { name: 'watch' });
  expect(created.statusCode).toBe(201);
  const id = created.json().id;
  expect((await call('POST', '/api/v1/smart-pools', { name: 'watch' })).statusCode).toBe(409);
  for (const [type, entity] of [
    ['pool', vms],
    ['host', host],
    ['vm', vm],
  ] as const) {
    expect((await call('PUT', `/api/v1/smart-pools/${id}/members/${type}/${entity}`)).statusCode).toBe(204);
  }
  expect((await call('PUT', `/api/v1/smart-pools/${id}/members/pool/${hidden}`)).statusCode).toBe(404);
  expect((await call('PUT', `/api/v1/smart-pools/${id}/members/switch/1`)).json().field).toBe('entityType');

  const got = await call('GET', `/api/v1/smart-pools/${id}`);
  expect(got.json()).toMatchObject({
    name: 'watch',
    members: [
      { entityType: 'host', entityId: host, name: 'node1' },
      { entityType: 'pool', entityId: vms, name: 'vms' },
      { entityType: 'vm', entityId: vm, name: 'web' },
    ],
  });
  // Not even the super-admin sees another user's smart pool.
  expect((await call('GET', `/api/v1/smart-pools/${id}`, undefined, other.token)).statusCode).toBe(404);
  expect((await call('GET', '/api/v1/smart-pools', undefined, other.token)).json().total).toBe(0);

  await db.deleteFrom('permissions').where('user_id', '=', owner.id).execute();
  expect((await call('GET', `/api/v1/smart-pools/${id}/members`)).json()).toEqual({ items: [], total: 0 });

  expect((await call('PATCH', `/api/v1/smart-pools/${id}`, { name: 'renamed' })).json().name).toBe('renamed');
  expect((await call('DELETE', `/api/v1/smart-pools/${id}/members/vm/${vm}`)).statusCode).toBe(204);
  expect((await call('DELETE', `/api/v1/smart-pools/${id}`)).statusCode).toBe(204);
  expect((await call('GET', `/api/v1/smart-pools/${id}`)).statusCode).toBe(404);
});
