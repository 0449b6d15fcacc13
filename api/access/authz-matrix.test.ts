import { afterAll, beforeAll } from 'vitest';
import { createTestApp, type TestApp } from '../../lib/testing/app.js';
import {
  type AuthzWorld,
  authzCase,
  createAuthzWorld,
  type MatrixRole,
  runAuthzMatrix,
  seen,
  statuses,
} from '../../lib/testing/authz-matrix.js';
import { insertVm } from '../../lib/testing/fleet.js';
import { createPool, createUserWithToken, grantRole } from '../../lib/testing/users.js';

let t: TestApp;
let world: AuthzWorld;
beforeAll(async () => {
  t = await createTestApp();
  world = await createAuthzWorld(t);
});
afterAll(() => t.close());

let fresh = 0;
const freshVmPool = (w: AuthzWorld) => createPool(w.db, { name: `p${++fresh}`, kind: 'vm', parentId: w.hw });
const freshUser = async (w: AuthzWorld) => (await createUserWithToken(w.db, { username: `u${++fresh}` })).id;
const smartPoolOf = async (w: AuthzWorld, role: MatrixRole) => {
  const res = await w.t.app.inject({
    method: 'POST',
    url: '/api/v1/smart-pools',
    headers: w.headers(role),
    payload: { name: `sp${++fresh}` },
  });
  return res.json().id as number;
};

runAuthzMatrix(
  () => world,
  [
    // Pools
    authzCase({
      name: 'a hardware pool',
      method: 'GET',
      url: (w) => `/api/v1/pools/${w.hw}`,
      expect: statuses(200, 200, 200, 200, 404),
    }),
    authzCase({
      name: 'a VM pool (inherited roles)',
      method: 'GET',
      url: (w) => `/api/v1/pools/${w.vmPool}`,
      expect: statuses(200, 200, 200, 200, 404),
    }),
    authzCase({
      name: 'the pool list',
      method: 'GET',
      url: () => '/api/v1/pools?limit=1000',
      expect: statuses(200, 200, 200, 200, 200),
      listed: { id: (w) => w.vmPool, expect: seen(true, true, true, true, false) },
    }),
    authzCase({
      name: 'the pool list (the unrelated pool)',
      method: 'GET',
      url: () => '/api/v1/pools?limit=1000',
      expect: statuses(200, 200, 200, 200, 200),
      listed: { id: (w) => w.otherHw, expect: seen(true, false, false, false, true) },
    }),
    authzCase({
      name: 'a VM pool in a hardware pool',
      method: 'POST',
      url: () => '/api/v1/pools',
      body: (w) => ({ name: 'new', kind: 'vm', parentId: w.hw }),
      expect: statuses(201, 201, 403, 403, 404),
    }),
    authzCase({
      name: 'a root hardware pool',
      method: 'POST',
      url: () => '/api/v1/pools',
      body: () => ({ name: 'root', kind: 'hardware' }),
      expect: statuses(201, 403, 403, 403, 403),
    }),
    authzCase({
      name: 'a pool rename',
      method: 'PATCH',
      setup: freshVmPool,
      url: (_w, id) => `/api/v1/pools/${id}`,
      body: () => ({ name: 'renamed' }),
      expect: statuses(200, 200, 403, 403, 404),
    }),
    authzCase({
      name: 'a pool move to the unrelated hardware pool',
      method: 'PATCH',
      setup: freshVmPool,
      url: (_w, id) => `/api/v1/pools/${id}`,
      body: (w) => ({ parentId: w.otherHw }),
      // admin may modify the pool but not put it where it has no role: the target is invisible to it.
      expect: statuses(200, 404, 403, 403, 404),
    }),
    authzCase({
      name: 'a pool deletion',
      method: 'DELETE',
      setup: freshVmPool,
      url: (_w, id) => `/api/v1/pools/${id}`,
      expect: statuses(204, 204, 403, 403, 404),
    }),
    authzCase({
      name: 'the deletion of the pool holding the grants',
      method: 'DELETE',
      setup: async (w) => {
        const id = await createPool(w.db, { name: `hw${++fresh}` });
        await grantRole(w.db, id, w.users.admin.id, 'admin');
        await grantRole(w.db, id, w.users.user.id, 'user');
        await grantRole(w.db, id, w.users.monitor.id, 'monitor');
        return id;
      },
      url: (_w, id) => `/api/v1/pools/${id}`,
      // Deleting needs modify on the parent (here the default root pool): an admin cannot delete its own pool.
      expect: statuses(204, 403, 403, 403, 404),
    }),

    // Permissions
    authzCase({
      name: 'the grants of a pool',
      method: 'GET',
      url: (w) => `/api/v1/pools/${w.hw}/permissions`,
      expect: statuses(200, 200, 200, 200, 404),
    }),
    authzCase({
      name: 'a grant below the admin’s pool',
      method: 'PUT',
      url: (w) => `/api/v1/pools/${w.vmPool}/permissions/${w.bystander.id}`,
      body: () => ({ role: 'user' }),
      expect: statuses(200, 200, 403, 403, 404),
    }),
    authzCase({
      name: 'a grant at the admin’s own level',
      method: 'PUT',
      url: (w) => `/api/v1/pools/${w.hw}/permissions/${w.bystander.id}`,
      body: () => ({ role: 'admin' }),
      expect: statuses(200, 403, 403, 403, 404),
    }),
    authzCase({
      name: 'a grant revocation',
      method: 'DELETE',
      setup: async (w) => {
        const userId = await freshUser(w);
        await grantRole(w.db, w.vmPool, userId, 'monitor');
        return userId;
      },
      url: (w, userId) => `/api/v1/pools/${w.vmPool}/permissions/${userId}`,
      expect: statuses(204, 204, 403, 403, 404),
    }),

    // Quotas and usage
    authzCase({
      name: 'a user quota',
      method: 'PUT',
      url: (w) => `/api/v1/pools/${w.vmPool}/quotas/${w.bystander.id}`,
      body: () => ({ vcpus: 8 }),
      expect: statuses(200, 200, 403, 403, 404),
    }),
    authzCase({
      name: 'a pool total quota',
      method: 'PUT',
      url: (w) => `/api/v1/pools/${w.vmPool}/quota`,
      body: () => ({ vms: 100 }),
      expect: statuses(200, 200, 403, 403, 404),
    }),
    authzCase({
      name: 'a quota removal',
      method: 'DELETE',
      setup: async (w) => {
        const pool = await freshVmPool(w);
        await w.t.app.inject({
          method: 'PUT',
          url: `/api/v1/pools/${pool}/quota`,
          headers: w.headers('super'),
          payload: { vms: 1 },
        });
        return pool;
      },
      url: (_w, pool) => `/api/v1/pools/${pool}/quota`,
      expect: statuses(204, 204, 403, 403, 404),
    }),
    authzCase({
      name: 'the quotas of a pool',
      method: 'GET',
      url: (w) => `/api/v1/pools/${w.vmPool}/quotas`,
      expect: statuses(200, 200, 200, 200, 404),
    }),
    authzCase({
      name: 'the usage of a pool',
      method: 'GET',
      url: (w) => `/api/v1/pools/${w.hw}/usage`,
      expect: statuses(200, 200, 200, 200, 404),
    }),
    authzCase({
      name: 'the reconciler',
      method: 'GET',
      url: () => '/api/v1/quota/reconcile',
      expect: statuses(200, 404, 404, 404, 404),
    }),

    // Users
    authzCase({
      name: 'a user',
      method: 'POST',
      url: () => '/api/v1/users',
      body: () => ({ username: `new${++fresh}`, password: 'long enough' }),
      expect: statuses(201, 403, 403, 403, 403),
    }),
    authzCase({
      name: 'the user list',
      method: 'GET',
      url: () => '/api/v1/users?limit=1000',
      expect: statuses(200, 200, 200, 200, 200),
      // Pool admins (unrelated is one elsewhere) look users up to grant them roles; others see only themselves.
      listed: { id: (w) => w.bystander.id, expect: seen(true, true, false, false, true) },
    }),
    authzCase({
      name: 'another user',
      method: 'GET',
      url: (w) => `/api/v1/users/${w.bystander.id}`,
      expect: statuses(200, 200, 404, 404, 200),
    }),
    authzCase({
      name: 'another user’s name',
      method: 'PATCH',
      url: (w) => `/api/v1/users/${w.bystander.id}`,
      body: () => ({ displayName: 'B. Stander' }),
      expect: statuses(200, 403, 404, 404, 403),
    }),
    authzCase({
      name: 'a user deletion',
      method: 'DELETE',
      setup: freshUser,
      url: (_w, id) => `/api/v1/users/${id}`,
      expect: statuses(204, 403, 404, 404, 403),
    }),
    authzCase({
      name: 'the directory',
      method: 'GET',
      url: () => '/api/v1/directory/users',
      expect: statuses(409, 404, 404, 404, 404),
    }),

    // Audit, self
    authzCase({
      name: 'the audit log',
      method: 'GET',
      url: () => '/api/v1/audit',
      expect: statuses(200, 404, 404, 404, 404),
    }),
    authzCase({
      name: 'me',
      method: 'GET',
      url: () => '/api/v1/me',
      expect: statuses(200, 200, 200, 200, 200),
    }),

    // Smart pools: only the owner sees one; only what one sees goes in.
    authzCase({
      name: 'the user’s smart pool',
      method: 'GET',
      setup: (w) => smartPoolOf(w, 'user'),
      url: (_w, id) => `/api/v1/smart-pools/${id}`,
      expect: statuses(404, 404, 200, 404, 404),
    }),
    authzCase({
      name: 'an admin’s VM into one’s own smart pool',
      method: 'PUT',
      setup: async (w, role) => ({
        sp: await smartPoolOf(w, role),
        vm: await insertVm(w.db, { poolId: w.vmPool, ownerId: w.users.admin.id }),
      }),
      url: (_w, c) => `/api/v1/smart-pools/${c.sp}/members/vm/${c.vm}`,
      // A `user` sees only its own VMs; monitors see all of the pool's.
      expect: statuses(204, 204, 404, 204, 404),
    }),
    authzCase({
      name: 'one’s own VM into one’s own smart pool',
      method: 'PUT',
      setup: async (w, role) => ({
        sp: await smartPoolOf(w, role),
        vm: await insertVm(w.db, { poolId: w.vmPool, ownerId: w.users.user.id }),
      }),
      url: (_w, c) => `/api/v1/smart-pools/${c.sp}/members/vm/${c.vm}`,
      expect: statuses(204, 204, 204, 204, 404),
    }),
  ],
);
