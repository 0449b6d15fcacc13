import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createLogger } from '../../lib/log.js';
import { authHeader, createPool, createUserWithToken, grantRole } from '../../lib/testing/users.js';
import { waitFor } from '../../lib/testing/wait.js';
import { insertChannel } from '../alerts/alerts.repository.js';
import { type Alerting, startAlerting } from '../alerts/start-alerting.js';
import { webhookReceiver } from '../alerts/test-support.js';
import { buildApp } from '../app.js';
import { authRoutes } from '../auth/auth.routes.js';
import { HostMonitor } from '../hosts/host-monitor.js';
import { createFleet, type Fleet, type User } from '../vms/testing/vm-fleet.js';
import { quotaEnforcementRoutes } from './enforcement.routes.js';
import { assertNotBlocked, isBlocked } from './quota-block.js';
import { type QuotaEnforcer, startQuotaEnforcer } from './quota-enforcer.js';

/** The test's webhook receiver listens on loopback, which webhooks may not reach unless allowed. */
const LOCAL_RECEIVER = ['127.0.0.1'];

/**
 * A libvirt test-driver host under herd: the host monitor (libvirt heartbeat) sees a VM started behind herd's
 * back, which pushes its owner over quota; the reconciler (real timers, short grace) applies the pool's policy.
 */

const GRACE_S = 2;
const RECONCILE_MS = 500;
const log = createLogger(process.env.HERD_TEST_LOG_LEVEL ?? 'silent');

let f: Fleet;
let rack: number;
let host: { id: number; uri: string };
let monitor: HostMonitor;
let enforcer: QuotaEnforcer;
let alerting: Alerting;
let api: FastifyInstance;
let hook: Awaited<ReturnType<typeof webhookReceiver>>;

beforeAll(async () => {
  f = await createFleet();
  const db = f.t.database.db;
  rack = await createPool(db, { name: 'rack' });
  host = await f.addHost(rack, { name: 'hv1', cpus: 16, memoryMiB: 32768 });
  await f.worker();
  // A generous answer timeout: on a loaded machine a slow heartbeat (over 0.3 s) must not mark hv1 unreachable.
  monitor = new HostMonitor({ db, connections: f.connections, log, intervalSeconds: 0.3, timeoutMs: 10_000 });
  monitor.start();
  alerting = await startAlerting({ webhookAllow: LOCAL_RECEIVER, db, log, autoRun: false });
  enforcer = startQuotaEnforcer({ db, log, intervalMs: RECONCILE_MS, feed: alerting.feed });
  api = await buildApp(f.t.deps, [authRoutes, quotaEnforcementRoutes]);
  await api.ready();
  hook = await webhookReceiver();
});
afterAll(async () => {
  await enforcer.stop();
  await monitor.stop();
  await alerting.stop();
  await api.close();
  await hook.close();
  await f.close();
});

async function act(user: User, vmId: number, action: string) {
  const res = await f.request(user, 'POST', `/api/v1/vms/${vmId}/actions`, { action });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  const task = await f.waitTask(res.body.taskId, user);
  expect(task.state, JSON.stringify(task)).toBe('done');
}

async function createVm(
  user: User,
  poolId: number,
  name: string,
  memoryMiB = 512,
): Promise<{ id: number; uuid: string }> {
  const res = await f.request(user, 'POST', '/api/v1/vms', { name, poolId, vcpus: 1, memoryMiB });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return (await f.request(user, 'GET', `/api/v1/vms/${res.body.id}`)).body;
}

const vmRow = (id: number) =>
  f.t.database.db
    .selectFrom('vms')
    .select(['state', 'state_changed_at', 'started_at'])
    .where('id', '=', id)
    .executeTakeFirstOrThrow();

/**
 * A VM pool with `policy` whose user runs `first` through herd, and has `second` defined on the host but
 * stopped; the user's memory quota then allows only `first`.
 */
async function overQuotaSetup(name: string, policy: 'block' | 'suspend-newest') {
  const db = f.t.database.db;
  const pool = await createPool(db, { name, kind: 'vm', parentId: rack });
  await db
    .updateTable('pools')
    .set({ quota_policy: policy, quota_grace_seconds: GRACE_S })
    .where('id', '=', pool)
    .execute();
  const user = await createUserWithToken(db, { username: `${name}-owner` });
  await grantRole(db, pool, user.id, 'user');
  const first = await createVm(user, pool, `${name}-first`);
  const second = await createVm(user, pool, `${name}-second`);
  await act(user, first.id, 'start');
  await act(user, second.id, 'start');
  await act(user, second.id, 'destroy');
  const quota = await f.request(f.admin, 'PUT', `/api/v1/pools/${pool}/quotas/${user.id}`, {
    memoryMiB: 512,
  });
  expect(quota.status, JSON.stringify(quota.body)).toBe(200);
  await insertChannel(db, {
    name: `${name}-hook`,
    type: 'webhook',
    pool_id: pool,
    config: JSON.stringify({ url: hook.url }),
    secret: 'k',
  });
  return { pool, user, first, second };
}

/** Starts the domain with libvirt directly, and waits for the heartbeat to report it; answers when herd saw it. */
async function startBehindHerdsBack(vm: { id: number; uuid: string }): Promise<number> {
  await (await f.connections.get(host.uri)).start(vm.uuid);
  await waitFor(async () => (await vmRow(vm.id)).state === 'running', 5_000, 20);
  return (await vmRow(vm.id)).state_changed_at.getTime();
}

describe('a VM started behind herd’s back pushes its owner over quota', () => {
  test('suspend-newest: herd suspends that VM within the grace period plus one reconcile interval', async () => {
    const s = await overQuotaSetup('suspend', 'suspend-newest');
    const seen = await startBehindHerdsBack(s.second);

    const db = f.t.database.db;
    const suspendLog = () =>
      db
        .selectFrom('quota_enforcement_log')
        .selectAll()
        .where('pool_id', '=', s.pool)
        .where('action', '=', 'suspend')
        .executeTakeFirst();
    await waitFor(async () => (await suspendLog()) !== undefined, (GRACE_S + 3) * 1000, 20);
    const decision = (await suspendLog())!;
    // The grace period runs from when herd learnt the VM runs; the first pass after it acts. Slack: a pass starts
    // RECONCILE_MS after the previous one ended, so add the duration of a pass on a busy machine.
    expect(decision.at.getTime() - seen).toBeLessThanOrEqual(GRACE_S * 1000 + RECONCILE_MS + 500);
    expect(decision.at.getTime() - seen).toBeGreaterThanOrEqual(GRACE_S * 1000);
    expect(decision).toMatchObject({ vm_id: s.second.id, user_id: s.user.id });
    expect(decision.reason).toContain('most recently started');

    // The task worker carries it out: the VM is saved, its memory freed, the quota met again.
    const task = await f.waitTask(decision.task_id!);
    expect(task).toMatchObject({ state: 'done', action: 'save' });
    expect((await vmRow(s.second.id)).state).toBe('saved');
    expect((await vmRow(s.first.id)).state).toBe('running');
    expect((await (await f.connections.get(host.uri)).domain(s.second.uuid))?.state).not.toBe('running');
    await waitFor(
      async () =>
        (await db.selectFrom('quota_enforcement').selectAll().where('pool_id', '=', s.pool).execute())
          .length === 0,
      5_000,
      50,
    );

    // Audited and notified; the pool page tells what was done and why.
    const audited = await db
      .selectFrom('audit_log')
      .selectAll()
      .where('action', '=', 'vm.save')
      .where('entity_id', '=', String(s.second.id))
      .execute();
    expect(audited).toHaveLength(1);
    expect(audited[0].user_id).toBeNull();
    await alerting.dispatch();
    const notified = hook.requests
      .flatMap((r) => r.json.alerts)
      .filter((a: any) => a.labels.pool === 'suspend');
    expect(notified.map((a: any) => a.labels.action)).toContain('suspend');
    const page = await api.inject({
      method: 'GET',
      url: `/api/v1/pools/${s.pool}/enforcement`,
      headers: authHeader(s.user.token),
    });
    expect(page.statusCode).toBe(200);
    expect(page.json()).toMatchObject({
      policy: 'suspend-newest',
      graceSeconds: GRACE_S,
      overQuota: false,
      blocked: false,
    });
    expect(page.json().actions.map((a: any) => a.action)).toEqual(['resolved', 'suspend', 'over']);
    expect(page.json().actions[1]).toMatchObject({
      vmId: s.second.id,
      vmName: 'suspend-second',
      taskId: decision.task_id,
    });
  });

  test('block: after the grace period the next start is refused with 409 until back under quota', async () => {
    const s = await overQuotaSetup('blocked', 'block');
    const third = await createVm(s.user, s.pool, 'blocked-third', 256);
    await startBehindHerdsBack(s.second);

    const db = f.t.database.db;
    await waitFor(async () => (await isBlocked(db, s.pool, s.user.id)) !== null, (GRACE_S + 3) * 1000, 20);
    const refused = await f.request(s.user, 'POST', `/api/v1/vms/${third.id}/actions`, { action: 'start' });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ error: 'quota_exceeded', resource: 'memory' });
    // Resumes and restores (which claim nothing new from a paused VM) are refused by the block itself.
    const blocked = await assertNotBlocked(db, { poolId: s.pool, userId: s.user.id }).catch((e) => e);
    expect(blocked).toMatchObject({
      statusCode: 409,
      code: 'quota_exceeded',
      details: { blocked: true, resource: 'memory', used: 1024, limit: 512 },
    });
    // Both VMs keep running: block stops nothing.
    expect((await vmRow(s.second.id)).state).toBe('running');

    const page = (
      await api.inject({
        method: 'GET',
        url: `/api/v1/pools/${s.pool}/enforcement`,
        headers: authHeader(s.user.token),
      })
    ).json();
    expect(page).toMatchObject({ policy: 'block', overQuota: true, blocked: true });
    expect(page.quotas[0]).toMatchObject({
      userId: s.user.id,
      action: 'block',
      blocked: true,
      over: { memoryMiB: { used: 1024, limit: 512 } },
    });
    expect(page.quotas[0].reason).toContain('starts, resumes and restores are refused');

    // Back under quota (the VM stopped outside herd too): the block lifts.
    await (await f.connections.get(host.uri)).destroy(s.second.uuid);
    await waitFor(async () => (await isBlocked(db, s.pool, s.user.id)) === null, 5_000, 20);
    await expect(assertNotBlocked(db, { poolId: s.pool, userId: s.user.id })).resolves.toBeUndefined();
    const after = (
      await api.inject({
        method: 'GET',
        url: `/api/v1/pools/${s.pool}/enforcement`,
        headers: authHeader(s.user.token),
      })
    ).json();
    expect(after.actions.map((a: any) => a.action)).toEqual(['resolved', 'unblock', 'block', 'over']);
  });

  test('the enforcement page answers 404 to those who may not see the pool', async () => {
    const stranger = await createUserWithToken(f.t.database.db, { username: 'enforcement-stranger' });
    const res = await api.inject({
      method: 'GET',
      url: `/api/v1/pools/${rack}/enforcement`,
      headers: authHeader(stranger.token),
    });
    expect(res.statusCode).toBe(404);
  });
});
