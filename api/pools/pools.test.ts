import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestApp, type TestApp } from '../../lib/testing/app.js';
import { insertHost, insertVm } from '../../lib/testing/fleet.js';
import { authHeader, createUserWithToken, grantRole } from '../../lib/testing/users.js';

let t: TestApp;
let root: { id: number; token: string };
let ann: { id: number; token: string };

beforeAll(async () => {
  t = await createTestApp();
  root = await createUserWithToken(t.database.db, { username: 'root', superAdmin: true });
  ann = await createUserWithToken(t.database.db, { username: 'ann' });
});
afterAll(() => t.close());

const call = (
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
  url: string,
  payload?: object,
  token = root.token,
) => t.app.inject({ method, url, headers: authHeader(token), ...(payload ? { payload } : {}) });
const create = async (payload: object, token = root.token) => {
  const res = await call('POST', '/api/v1/pools', payload, token);
  expect(res.statusCode, res.body).toBe(201);
  return res.json().id as number;
};

describe('the pool tree', () => {
  test('hardware pools nest; VM pools live inside hardware pools', async () => {
    const lab = await create({ name: 'lab', kind: 'hardware', parentId: 1 });
    const rack = await create({ name: 'rack', kind: 'hardware', parentId: lab });
    const vms = await create({ name: 'vms', kind: 'vm', parentId: rack });
    const got = await call('GET', `/api/v1/pools/${vms}`);
    expect(got.json()).toMatchObject({
      id: vms,
      name: 'vms',
      kind: 'vm',
      parentId: rack,
      role: 'super',
      quotaPolicy: 'alert',
    });

    const noParent = await call('POST', '/api/v1/pools', { name: 'x', kind: 'vm' });
    expect(noParent.statusCode).toBe(400);
    expect(noParent.json().field).toBe('parentId');
    const inVmPool = await call('POST', '/api/v1/pools', { name: 'x', kind: 'hardware', parentId: vms });
    expect(inVmPool.statusCode).toBe(400);
    expect(inVmPool.json().field).toBe('parentId');
    const badKind = await call('POST', '/api/v1/pools', { name: 'x', kind: 'cluster', parentId: 1 });
    expect(badKind.statusCode).toBe(400);
    expect(badKind.json().field).toBe('kind');
    const blank = await call('POST', '/api/v1/pools', { name: '  ', kind: 'hardware' });
    expect(blank.json().field).toBe('name');
    expect((await call('POST', '/api/v1/pools', { name: 'x', kind: 'vm', parentId: 99999 })).statusCode).toBe(
      404,
    );

    const children = await call('GET', `/api/v1/pools?parentId=${lab}`);
    expect(children.json()).toMatchObject({ total: 1, items: [{ id: rack }] });
  });

  test('a pool moves between hardware pools, never below itself', async () => {
    const a = await create({ name: 'a', kind: 'hardware', parentId: 1 });
    const b = await create({ name: 'b', kind: 'hardware', parentId: 1 });
    const a1 = await create({ name: 'a1', kind: 'hardware', parentId: a });
    const v = await create({ name: 'v', kind: 'vm', parentId: a1 });

    const moved = await call('PATCH', `/api/v1/pools/${v}`, { parentId: b });
    expect(moved.statusCode).toBe(200);
    expect(moved.json().parentId).toBe(b);
    const cycle = await call('PATCH', `/api/v1/pools/${a}`, { parentId: a1 });
    expect(cycle.statusCode).toBe(400);
    expect(cycle.json().field).toBe('parentId');
    expect((await call('PATCH', `/api/v1/pools/${a}`, { parentId: a })).statusCode).toBe(400);
    expect((await call('PATCH', `/api/v1/pools/${a1}`, { parentId: v })).statusCode).toBe(400);
    expect((await call('PATCH', '/api/v1/pools/1', { parentId: a })).statusCode).toBe(409);
    expect((await call('PATCH', `/api/v1/pools/${a}`, {})).statusCode).toBe(400);

    // Roles follow the tree as it is now.
    await grantRole(t.database.db, b, ann.id, 'monitor');
    expect((await call('GET', `/api/v1/pools/${v}`, undefined, ann.token)).json().role).toBe('monitor');
    await call('PATCH', `/api/v1/pools/${v}`, { parentId: a });
    expect((await call('GET', `/api/v1/pools/${v}`, undefined, ann.token)).statusCode).toBe(404);
  });

  test('deletion: only when empty, or moving hosts, storage and pools to the parent on request', async () => {
    const parent = await create({ name: 'parent', kind: 'hardware', parentId: 1 });
    const doomed = await create({ name: 'doomed', kind: 'hardware', parentId: parent });
    const child = await create({ name: 'child', kind: 'vm', parentId: doomed });
    const host = await insertHost(t.database.db, { poolId: doomed, cpus: 4, memoryMiB: 4096 });

    const refused = await call('DELETE', `/api/v1/pools/${doomed}`);
    expect(refused.statusCode).toBe(409);
    expect(refused.json()).toMatchObject({
      error: 'pool_not_empty',
      contents: { pools: 1, hosts: 1, vms: 0 },
    });

    expect((await call('DELETE', `/api/v1/pools/${doomed}?moveContentsToParent=true`)).statusCode).toBe(204);
    expect((await call('GET', `/api/v1/pools/${doomed}`)).statusCode).toBe(404);
    expect((await call('GET', `/api/v1/pools/${child}`)).json().parentId).toBe(parent);
    const hostRow = await t.database.db
      .selectFrom('hosts')
      .select('pool_id')
      .where('id', '=', host)
      .executeTakeFirstOrThrow();
    expect(hostRow.pool_id).toBe(parent);

    // VMs live in VM pools: a VM pool with VMs is never deleted, not even moving contents.
    await insertVm(t.database.db, { poolId: child, ownerId: ann.id });
    expect((await call('DELETE', `/api/v1/pools/${child}?moveContentsToParent=true`)).json().error).toBe(
      'pool_has_vms',
    );
    expect((await call('DELETE', '/api/v1/pools/1')).statusCode).toBe(409);
  });

  test('every change is in the audit log, with before and after', async () => {
    const p = await create({ name: 'audited', kind: 'hardware', parentId: 1 });
    await call('PATCH', `/api/v1/pools/${p}`, { name: 'renamed', placementPolicy: 'spread' });
    await call('DELETE', `/api/v1/pools/${p}`);
    const log = await call('GET', `/api/v1/audit?entityType=pool&entityId=${p}`);
    const items = log.json().items;
    expect(items.map((e: { action: string }) => e.action)).toEqual([
      'pool.delete',
      'pool.update',
      'pool.create',
    ]);
    expect(items[1]).toMatchObject({
      userId: root.id,
      username: 'root',
      before: { name: 'audited', placementPolicy: null },
      after: { name: 'renamed', placementPolicy: 'spread' },
    });
    expect(items[0].after).toBeNull();
    expect(new Date(items[0].at).getTime()).toBeGreaterThan(Date.now() - 60_000);
  });
});
