import { afterAll, beforeAll } from 'vitest';
import { PostgresStore } from '../../ingest/store/postgres-store.js';
import { createLogger } from '../../lib/log.js';
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
import { insertHost, insertVm } from '../../lib/testing/fleet.js';

// The matrix of the fleet's endpoints (hosts, storage, VMs, tasks, metrics, alerts, enforcement); the
// governance endpoints are in authz-matrix.test.ts.

let t: TestApp;
let world: AuthzWorld;
let store: PostgresStore;
beforeAll(async () => {
  t = await createTestApp();
  // Graphs need a metrics store; an empty one is enough, the access check comes before any reading.
  store = new PostgresStore({
    db: t.database.db,
    batchSize: 100,
    flushMs: 20,
    memoryPoints: 1000,
    retentionDays: 1,
    log: createLogger('silent'),
  });
  await store.start();
  t.deps.store = store;
  world = await createAuthzWorld(t);
});
afterAll(async () => {
  await store.stop();
  await t.close();
});

let fresh = 0;
const hostIn = (w: AuthzWorld, poolId: number) => insertHost(w.db, { poolId, cpus: 4, memoryMiB: 4096 });
const vmOf = (w: AuthzWorld, owner: MatrixRole) =>
  insertVm(w.db, { poolId: w.vmPool, ownerId: w.users[owner].id });
const storagePoolIn = async (w: AuthzWorld, poolId: number) =>
  (
    await w.db
      .insertInto('storage_pools')
      .values({ pool_id: poolId, type: 'nfs', name: `sp${++fresh}` })
      .returning('id')
      .executeTakeFirstOrThrow()
  ).id;
/** A finished task on `owner`'s VM, asked for by `owner`. */
const taskOn = async (w: AuthzWorld, owner: MatrixRole) => {
  const vm = await vmOf(w, owner);
  return (
    await w.db
      .insertInto('tasks')
      .values({
        user_id: w.users[owner].id,
        action: 'start',
        target_type: 'vm',
        target_id: vm,
        args: {},
        state: 'done',
        pool_id: w.vmPool,
      })
      .returning('id')
      .executeTakeFirstOrThrow()
  ).id;
};
const poolRule = async (w: AuthzWorld, poolId: number) => {
  const res = await w.t.app.inject({
    method: 'POST',
    url: '/api/v1/alert-rules',
    headers: w.headers('super'),
    payload: {
      name: `rule${++fresh}`,
      scope: 'pool',
      poolId,
      metric: { source: 'live', field: 'load5PerCpu' },
      condition: 'above',
      threshold: 2,
    },
  });
  return res.json().id as number;
};
const firingAlertIn = async (w: AuthzWorld, poolId: number) => {
  const ruleId = await poolRule(w, poolId);
  const { id } = await w.db
    .insertInto('alert_instances')
    .values({
      rule_id: ruleId,
      subject: `pool:${poolId}`,
      pool_id: poolId,
      state: 'firing',
      state_changed_at: new Date(),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return Number(id);
};

runAuthzMatrix(
  () => world,
  [
    // Hosts
    authzCase({
      name: 'the host list',
      method: 'GET',
      setup: (w) => hostIn(w, w.hw),
      url: () => '/api/v1/hosts?limit=1000',
      expect: statuses(200, 200, 200, 200, 200),
      listed: { id: (_w, id) => id, expect: seen(true, true, true, true, false) },
    }),
    authzCase({
      name: 'the host list (a host of the unrelated pool)',
      method: 'GET',
      setup: (w) => hostIn(w, w.otherHw),
      url: () => '/api/v1/hosts?limit=1000',
      expect: statuses(200, 200, 200, 200, 200),
      listed: { id: (_w, id) => id, expect: seen(true, false, false, false, true) },
    }),
    authzCase({
      name: 'a host',
      method: 'GET',
      setup: (w) => hostIn(w, w.hw),
      url: (_w, id) => `/api/v1/hosts/${id}`,
      expect: statuses(200, 200, 200, 200, 404),
    }),
    authzCase({
      name: 'a host of the unrelated pool',
      method: 'GET',
      setup: (w) => hostIn(w, w.otherHw),
      url: (_w, id) => `/api/v1/hosts/${id}`,
      expect: statuses(200, 404, 404, 404, 200),
    }),
    authzCase({
      name: 'a host’s reserved capacity',
      method: 'PATCH',
      setup: (w) => hostIn(w, w.hw),
      url: (_w, id) => `/api/v1/hosts/${id}`,
      body: () => ({ reservedVcpus: 1 }),
      expect: statuses(200, 200, 403, 403, 404),
    }),
    authzCase({
      name: 'a host move to the unrelated pool',
      method: 'PATCH',
      setup: (w) => hostIn(w, w.hw),
      url: (_w, id) => `/api/v1/hosts/${id}`,
      body: (w) => ({ poolId: w.otherHw }),
      // admin may modify the host but not put it where it has no role: the target is invisible to it.
      expect: statuses(200, 404, 403, 403, 404),
    }),
    authzCase({
      name: 'a host removal',
      method: 'DELETE',
      setup: (w) => hostIn(w, w.hw),
      url: (_w, id) => `/api/v1/hosts/${id}`,
      expect: statuses(204, 204, 403, 403, 404),
    }),

    // Storage
    authzCase({
      name: 'the storage pool list',
      method: 'GET',
      setup: (w) => storagePoolIn(w, w.hw),
      url: () => '/api/v1/storage-pools?limit=1000',
      expect: statuses(200, 200, 200, 200, 200),
      listed: { id: (_w, id) => id, expect: seen(true, true, true, true, false) },
    }),
    authzCase({
      name: 'the storage pool list (one of the unrelated pool)',
      method: 'GET',
      setup: (w) => storagePoolIn(w, w.otherHw),
      url: () => '/api/v1/storage-pools?limit=1000',
      expect: statuses(200, 200, 200, 200, 200),
      listed: { id: (_w, id) => id, expect: seen(true, false, false, false, true) },
    }),
    authzCase({
      name: 'a storage pool',
      method: 'GET',
      setup: (w) => storagePoolIn(w, w.hw),
      url: (_w, id) => `/api/v1/storage-pools/${id}`,
      expect: statuses(200, 200, 200, 200, 404),
    }),
    authzCase({
      name: 'the volumes of a storage pool',
      method: 'GET',
      setup: (w) => storagePoolIn(w, w.hw),
      url: (_w, id) => `/api/v1/storage-pools/${id}/volumes`,
      expect: statuses(200, 200, 200, 200, 404),
    }),
    authzCase({
      name: 'a storage pool removal',
      method: 'DELETE',
      setup: (w) => storagePoolIn(w, w.hw),
      url: (_w, id) => `/api/v1/storage-pools/${id}`,
      expect: statuses(204, 204, 403, 403, 404),
    }),

    // VMs: admin and monitor see all of the pool's, `user` only its own.
    authzCase({
      name: 'the VM list (an admin’s VM)',
      method: 'GET',
      setup: (w) => vmOf(w, 'admin'),
      url: () => '/api/v1/vms?limit=1000',
      expect: statuses(200, 200, 200, 200, 200),
      listed: { id: (_w, id) => id, expect: seen(true, true, false, true, false) },
    }),
    authzCase({
      name: 'the VM list (the user’s own VM)',
      method: 'GET',
      setup: (w) => vmOf(w, 'user'),
      url: () => '/api/v1/vms?limit=1000',
      expect: statuses(200, 200, 200, 200, 200),
      listed: { id: (_w, id) => id, expect: seen(true, true, true, true, false) },
    }),
    authzCase({
      name: 'an admin’s VM',
      method: 'GET',
      setup: (w) => vmOf(w, 'admin'),
      url: (_w, id) => `/api/v1/vms/${id}`,
      expect: statuses(200, 200, 404, 200, 404),
    }),
    authzCase({
      name: 'the user’s own VM',
      method: 'GET',
      setup: (w) => vmOf(w, 'user'),
      url: (_w, id) => `/api/v1/vms/${id}`,
      expect: statuses(200, 200, 200, 200, 404),
    }),
    authzCase({
      name: 'a shutdown of the user’s stopped VM',
      method: 'POST',
      setup: (w) => vmOf(w, 'user'),
      url: (_w, id) => `/api/v1/vms/${id}/actions`,
      body: () => ({ action: 'shutdown' }),
      // Access is decided first: those who may control it hear that a stopped VM cannot shut down (409).
      expect: statuses(409, 409, 409, 403, 404),
    }),
    authzCase({
      name: 'a shutdown of an admin’s stopped VM',
      method: 'POST',
      setup: (w) => vmOf(w, 'admin'),
      url: (_w, id) => `/api/v1/vms/${id}/actions`,
      body: () => ({ action: 'shutdown' }),
      expect: statuses(409, 409, 404, 403, 404),
    }),
    authzCase({
      name: 'a migration of the user’s never-started VM',
      method: 'POST',
      setup: (w) => insertVm(w.db, { poolId: w.vmPool, ownerId: w.users.user.id, state: 'defined' }),
      url: (_w, id) => `/api/v1/vms/${id}/actions`,
      body: () => ({ action: 'migrate' }),
      // Migrating takes the admin role even on one's own VM; admins then hear that a VM on no host cannot
      // migrate (409), which queues no task.
      expect: statuses(409, 409, 403, 403, 404),
    }),
    authzCase({
      name: 'a rename of the user’s VM',
      method: 'PATCH',
      setup: (w) => vmOf(w, 'user'),
      url: (_w, id) => `/api/v1/vms/${id}`,
      body: () => ({ name: `renamed-${++fresh}` }),
      expect: statuses(200, 200, 200, 403, 404),
    }),
    authzCase({
      name: 'the deletion of the user’s stopped VM',
      method: 'DELETE',
      setup: (w) => vmOf(w, 'user'),
      url: (_w, id) => `/api/v1/vms/${id}`,
      expect: statuses(204, 204, 204, 403, 404),
    }),

    authzCase({
      name: 'the placement of an admin’s VM',
      method: 'GET',
      setup: (w) => vmOf(w, 'admin'),
      url: (_w, id) => `/api/v1/vms/${id}/placement`,
      expect: statuses(200, 200, 404, 200, 404),
    }),

    // Tasks follow the VMs they act on.
    authzCase({
      name: 'the task list (an admin’s task)',
      method: 'GET',
      setup: (w) => taskOn(w, 'admin'),
      url: () => '/api/v1/tasks?limit=1000',
      expect: statuses(200, 200, 200, 200, 200),
      listed: { id: (_w, id) => id, expect: seen(true, true, false, true, false) },
    }),
    authzCase({
      name: 'the task list (the user’s task)',
      method: 'GET',
      setup: (w) => taskOn(w, 'user'),
      url: () => '/api/v1/tasks?limit=1000',
      expect: statuses(200, 200, 200, 200, 200),
      listed: { id: (_w, id) => id, expect: seen(true, true, true, true, false) },
    }),
    authzCase({
      name: 'an admin’s task',
      method: 'GET',
      setup: (w) => taskOn(w, 'admin'),
      url: (_w, id) => `/api/v1/tasks/${id}`,
      expect: statuses(200, 200, 404, 200, 404),
    }),

    authzCase({
      name: 'the cancellation of the user’s finished task',
      method: 'POST',
      setup: (w) => taskOn(w, 'user'),
      url: (_w, id) => `/api/v1/tasks/${id}/cancel`,
      // Those who may cancel hear that a finished task cannot be (409); monitors may not cancel at all.
      expect: statuses(409, 409, 409, 403, 404),
    }),

    // Metrics
    authzCase({
      name: 'a host graph',
      method: 'GET',
      setup: (w) => hostIn(w, w.hw),
      url: (_w, id) => `/api/v1/metrics?entity=host:${id}&metric=cpu`,
      expect: statuses(200, 200, 200, 200, 404),
    }),
    authzCase({
      name: 'a graph of an admin’s VM',
      method: 'GET',
      setup: (w) => vmOf(w, 'admin'),
      url: (_w, id) => `/api/v1/metrics?entity=vm:${id}&metric=cpu`,
      expect: statuses(200, 200, 404, 200, 404),
    }),
    authzCase({
      name: 'a pool graph',
      method: 'GET',
      url: (w) => `/api/v1/metrics?entity=pool:${w.hw}&metric=cpu`,
      expect: statuses(200, 200, 200, 200, 404),
    }),

    // Alerts
    authzCase({
      name: 'the alert list',
      method: 'GET',
      setup: (w) => firingAlertIn(w, w.hw),
      url: () => '/api/v1/alerts?limit=1000',
      expect: statuses(200, 200, 200, 200, 200),
      listed: { id: (_w, id) => id, expect: seen(true, true, true, true, false) },
    }),
    authzCase({
      name: 'an alert',
      method: 'GET',
      setup: (w) => firingAlertIn(w, w.hw),
      url: (_w, id) => `/api/v1/alerts/${id}`,
      expect: statuses(200, 200, 200, 200, 404),
    }),
    authzCase({
      name: 'the alert rule list',
      method: 'GET',
      setup: (w) => poolRule(w, w.hw),
      url: () => '/api/v1/alert-rules?limit=1000',
      expect: statuses(200, 200, 200, 200, 200),
      listed: { id: (_w, id) => id, expect: seen(true, true, true, true, false) },
    }),
    authzCase({
      name: 'a pool’s alert rule',
      method: 'GET',
      setup: (w) => poolRule(w, w.hw),
      url: (_w, id) => `/api/v1/alert-rules/${id}`,
      expect: statuses(200, 200, 200, 200, 404),
    }),
    authzCase({
      name: 'a pool’s alert rule threshold',
      method: 'PATCH',
      setup: (w) => poolRule(w, w.hw),
      url: (_w, id) => `/api/v1/alert-rules/${id}`,
      body: () => ({ threshold: 3 }),
      expect: statuses(200, 200, 403, 403, 404),
    }),

    authzCase({
      name: 'an alert rule of the unrelated pool',
      method: 'GET',
      setup: (w) => poolRule(w, w.otherHw),
      url: (_w, id) => `/api/v1/alert-rules/${id}`,
      expect: statuses(200, 404, 404, 404, 200),
    }),
    authzCase({
      name: 'an alert rule on a pool',
      method: 'POST',
      url: () => '/api/v1/alert-rules',
      body: (w) => ({
        name: `rule${++fresh}`,
        scope: 'pool',
        poolId: w.hw,
        metric: { source: 'live', field: 'load5PerCpu' },
        condition: 'above',
        threshold: 2,
      }),
      expect: statuses(201, 201, 403, 403, 404),
    }),

    // Quota enforcement and usage
    authzCase({
      name: 'the enforcement of a pool',
      method: 'GET',
      url: (w) => `/api/v1/pools/${w.hw}/enforcement`,
      expect: statuses(200, 200, 200, 200, 404),
    }),
    authzCase({
      name: 'the enforcement of a VM pool',
      method: 'GET',
      url: (w) => `/api/v1/pools/${w.vmPool}/enforcement`,
      expect: statuses(200, 200, 200, 200, 404),
    }),
    authzCase({
      name: 'the usage of a VM pool',
      method: 'GET',
      url: (w) => `/api/v1/pools/${w.vmPool}/usage`,
      expect: statuses(200, 200, 200, 200, 404),
    }),
    authzCase({
      name: 'the usage of the unrelated pool',
      method: 'GET',
      url: (w) => `/api/v1/pools/${w.otherHw}/usage`,
      expect: statuses(200, 404, 404, 404, 200),
    }),
  ],
);
