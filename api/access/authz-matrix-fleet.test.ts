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
/** A collectd notification about a new host of `poolId` (or about `vm` when given); answers its id. */
const eventAbout = async (w: AuthzWorld, poolId: number, vm?: MatrixRole) => {
  const hostId = await hostIn(w, poolId);
  const { hostname } = await w.db
    .selectFrom('hosts')
    .select('hostname')
    .where('id', '=', hostId)
    .executeTakeFirstOrThrow();
  const vmId = vm === undefined ? undefined : await vmOf(w, vm);
  const uuid =
    vmId === undefined
      ? undefined
      : (await w.db.selectFrom('vms').select('uuid').where('id', '=', vmId).executeTakeFirstOrThrow()).uuid;
  const { id } = await w.db
    .insertInto('events')
    .values({ time: new Date(), host: uuid ?? hostname, severity: 'WARNING', message: 'm' })
    .returning('id')
    .executeTakeFirstOrThrow();
  return Number(id);
};
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

const imageOf = async (w: AuthzWorld, by: 'super' | 'admin' = 'super') => {
  const res = await w.t.app.inject({
    method: 'POST',
    url: '/api/v1/images',
    headers: w.headers(by),
    payload: { name: `image${++fresh}`, ipxeUrl: 'http://127.0.0.1/boot.ipxe' },
  });
  return res.json().id as number;
};
const volumeIn = async (w: AuthzWorld, poolId: number) => {
  const storagePoolId = await storagePoolIn(w, poolId);
  const { id } = await w.db
    .insertInto('volumes')
    .values({ storage_pool_id: storagePoolId, name: `vol${++fresh}`, path: null, size_gib: 1, vm_id: null })
    .returning('id')
    .executeTakeFirstOrThrow();
  return { storagePoolId, volumeId: id };
};
const silenceBody = (poolId: number) => ({
  poolId,
  matchers: [{ name: 'alertname', value: `matrix${++fresh}` }],
  endsAt: new Date(Date.now() + 3_600_000).toISOString(),
  comment: 'authz matrix',
});
const silenceIn = async (w: AuthzWorld, poolId: number) => {
  const res = await w.t.app.inject({
    method: 'POST',
    url: '/api/v1/silences',
    headers: w.headers('super'),
    payload: silenceBody(poolId),
  });
  return res.json().id as number;
};
const channelBody = (poolId: number) => ({
  name: `channel${++fresh}`,
  type: 'webhook',
  poolId,
  config: { url: 'http://hooks.invalid/hook' },
});
const channelIn = async (w: AuthzWorld, poolId: number) => {
  const res = await w.t.app.inject({
    method: 'POST',
    url: '/api/v1/notification-channels',
    headers: w.headers('super'),
    payload: channelBody(poolId),
  });
  return res.json().id as number;
};
const notificationIn = async (w: AuthzWorld, poolId: number) => {
  const channelId = await channelIn(w, poolId);
  const { id } = await w.db
    .insertInto('notifications')
    .values({
      channel_id: channelId,
      rule_id: null,
      pool_id: poolId,
      group_key: `g${++fresh}`,
      status: 'grouping',
      alerts: JSON.stringify([]),
      payload: null,
      created_at: new Date(),
      not_before: new Date(),
      last_error: null,
      history: '[]',
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return id;
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

    // collectd notifications (events)
    authzCase({
      name: 'a host’s events',
      method: 'GET',
      setup: (w) => hostIn(w, w.hw),
      url: (_w, id) => `/api/v1/hosts/${id}/events`,
      expect: statuses(200, 200, 200, 200, 404),
    }),
    authzCase({
      name: 'the events of a host of the unrelated pool',
      method: 'GET',
      setup: (w) => hostIn(w, w.otherHw),
      url: (_w, id) => `/api/v1/hosts/${id}/events`,
      expect: statuses(200, 404, 404, 404, 200),
    }),
    authzCase({
      name: 'the events of a VM the admin owns',
      method: 'GET',
      setup: (w) => vmOf(w, 'admin'),
      url: (_w, id) => `/api/v1/vms/${id}/events`,
      expect: statuses(200, 200, 404, 200, 404),
    }),
    authzCase({
      name: 'the event list (a host’s event)',
      method: 'GET',
      setup: (w) => eventAbout(w, w.hw),
      url: () => '/api/v1/events?limit=1000',
      expect: statuses(200, 200, 200, 200, 200),
      listed: { id: (_w, id) => id, expect: seen(true, true, true, true, false) },
    }),
    authzCase({
      name: 'the event list (an event of a VM the admin owns)',
      method: 'GET',
      setup: (w) => eventAbout(w, w.hw, 'admin'),
      url: () => '/api/v1/events?limit=1000',
      expect: statuses(200, 200, 200, 200, 200),
      listed: { id: (_w, id) => id, expect: seen(true, true, false, true, false) },
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
      name: 'the user’s VM marked installed',
      method: 'POST',
      setup: (w) => vmOf(w, 'user'),
      url: (_w, id) => `/api/v1/vms/${id}/installed`,
      expect: statuses(200, 200, 200, 403, 404),
    }),
    authzCase({
      name: 'an admin’s VM marked installed',
      method: 'POST',
      setup: (w) => vmOf(w, 'admin'),
      url: (_w, id) => `/api/v1/vms/${id}/installed`,
      expect: statuses(200, 200, 404, 403, 404),
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

    // Install images: a catalogue shared by every pool, which anyone signed in reads and pool admins extend; an
    // image is removed by who added it or the super-admin.
    authzCase({
      name: 'the image list',
      method: 'GET',
      setup: (w) => imageOf(w),
      url: () => '/api/v1/images?limit=1000',
      expect: statuses(200, 200, 200, 200, 200),
      listed: { id: (_w, id) => id, expect: seen(true, true, true, true, true) },
    }),
    authzCase({
      name: 'an image',
      method: 'GET',
      setup: (w) => imageOf(w),
      url: (_w, id) => `/api/v1/images/${id}`,
      expect: statuses(200, 200, 200, 200, 200),
    }),
    authzCase({
      name: 'an image addition',
      method: 'POST',
      url: () => '/api/v1/images',
      body: () => ({ name: `image${++fresh}`, kernel: 'http://127.0.0.1/vmlinuz' }),
      // `unrelated` administers a pool of its own, which is all curating the catalogue takes.
      expect: statuses(201, 201, 403, 403, 201),
    }),
    authzCase({
      name: "the removal of the super-admin's image",
      method: 'DELETE',
      setup: (w) => imageOf(w),
      url: (_w, id) => `/api/v1/images/${id}`,
      expect: statuses(204, 403, 403, 403, 403),
    }),
    authzCase({
      name: "the removal of a pool admin's image",
      method: 'DELETE',
      setup: (w) => imageOf(w, 'admin'),
      url: (_w, id) => `/api/v1/images/${id}`,
      expect: statuses(204, 204, 403, 403, 403),
    }),

    // Volumes: the fixtures' storage pools have no host, so those who may modify hear that (409) before any
    // libvirt call.
    authzCase({
      name: 'a volume creation',
      method: 'POST',
      setup: (w) => storagePoolIn(w, w.hw),
      url: (_w, id) => `/api/v1/storage-pools/${id}/volumes`,
      body: () => ({ name: `vol${++fresh}`, sizeGiB: 1 }),
      expect: statuses(409, 409, 403, 403, 404),
    }),
    authzCase({
      name: 'a volume deletion',
      method: 'DELETE',
      setup: (w) => volumeIn(w, w.hw),
      url: (_w, v) => `/api/v1/storage-pools/${v.storagePoolId}/volumes/${v.volumeId}`,
      expect: statuses(409, 409, 403, 403, 404),
    }),

    // Host evacuation and registration
    authzCase({
      name: 'the evacuation of an empty host',
      method: 'POST',
      setup: (w) => hostIn(w, w.hw),
      url: (_w, id) => `/api/v1/hosts/${id}/evacuate`,
      expect: statuses(202, 202, 403, 403, 404),
    }),
    authzCase({
      name: 'a host registration',
      method: 'POST',
      url: () => '/api/v1/hosts/register',
      body: () => {
        const n = ++fresh;
        return { uri: `qemu+ssh://matrix-${n}/system`, hostname: `matrix-${n}`, cpus: 4, memoryMiB: 4096 };
      },
      // New hosts land in the default pool, where only the super-admin holds a role here.
      expect: statuses(201, 404, 404, 404, 404),
    }),

    // Silences
    authzCase({
      name: 'the silence list',
      method: 'GET',
      setup: (w) => silenceIn(w, w.hw),
      url: () => '/api/v1/silences?limit=1000',
      expect: statuses(200, 200, 200, 200, 200),
      listed: { id: (_w, id) => id, expect: seen(true, true, true, true, false) },
    }),
    authzCase({
      name: 'a silence on a pool',
      method: 'POST',
      url: () => '/api/v1/silences',
      body: (w) => silenceBody(w.hw),
      expect: statuses(201, 201, 403, 403, 404),
    }),
    authzCase({
      name: 'a global silence',
      method: 'POST',
      url: () => '/api/v1/silences',
      body: (w) => {
        const { poolId: _global, ...body } = silenceBody(w.hw);
        return body;
      },
      expect: statuses(201, 403, 403, 403, 403),
    }),
    authzCase({
      name: 'a pool silence',
      method: 'GET',
      setup: (w) => silenceIn(w, w.hw),
      url: (_w, id) => `/api/v1/silences/${id}`,
      expect: statuses(200, 200, 200, 200, 404),
    }),
    authzCase({
      name: 'a pool silence change',
      method: 'PATCH',
      setup: (w) => silenceIn(w, w.hw),
      url: (_w, id) => `/api/v1/silences/${id}`,
      body: () => ({ comment: 'changed by the authz matrix' }),
      expect: statuses(200, 200, 403, 403, 404),
    }),
    authzCase({
      name: 'a pool silence removal',
      method: 'DELETE',
      setup: (w) => silenceIn(w, w.hw),
      url: (_w, id) => `/api/v1/silences/${id}`,
      expect: statuses(204, 204, 403, 403, 404),
    }),

    // Notification channels are the pool admins' only; notifications (deliveries) are seen like alerts.
    authzCase({
      name: 'the notification channel list',
      method: 'GET',
      setup: (w) => channelIn(w, w.hw),
      url: () => '/api/v1/notification-channels?limit=1000',
      expect: statuses(200, 200, 200, 200, 200),
      listed: { id: (_w, id) => id, expect: seen(true, true, false, false, false) },
    }),
    authzCase({
      name: 'a notification channel on a pool',
      method: 'POST',
      url: () => '/api/v1/notification-channels',
      body: (w) => channelBody(w.hw),
      expect: statuses(201, 201, 403, 403, 404),
    }),
    // A channel is invisible to those below admin (it is not in their list either): 404, not 403.
    authzCase({
      name: 'a notification channel',
      method: 'GET',
      setup: (w) => channelIn(w, w.hw),
      url: (_w, id) => `/api/v1/notification-channels/${id}`,
      expect: statuses(200, 200, 404, 404, 404),
    }),
    authzCase({
      name: 'a notification channel change',
      method: 'PATCH',
      setup: (w) => channelIn(w, w.hw),
      url: (_w, id) => `/api/v1/notification-channels/${id}`,
      body: () => ({ name: `renamed${++fresh}` }),
      expect: statuses(200, 200, 404, 404, 404),
    }),
    authzCase({
      name: 'a notification channel removal',
      method: 'DELETE',
      setup: (w) => channelIn(w, w.hw),
      url: (_w, id) => `/api/v1/notification-channels/${id}`,
      expect: statuses(204, 204, 404, 404, 404),
    }),
    authzCase({
      name: 'the notification list',
      method: 'GET',
      setup: (w) => notificationIn(w, w.hw),
      url: () => '/api/v1/notifications?limit=1000',
      expect: statuses(200, 200, 200, 200, 200),
      listed: { id: (_w, id) => id, expect: seen(true, true, true, true, false) },
    }),

    // VM creation
    authzCase({
      name: 'a VM in the VM pool',
      method: 'POST',
      url: () => '/api/v1/vms',
      body: (w) => ({ name: `vm-${++fresh}`, poolId: w.vmPool, vcpus: 1, memoryMiB: 256, nics: 0 }),
      expect: statuses(201, 201, 201, 403, 404),
    }),
  ],
);
