import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LiveView } from '../../ingest/live-view.js';
import { createLogger } from '../../lib/log.js';
import { createUserWithToken, grantRole } from '../../lib/testing/users.js';
import { createFleet, type Fleet, type User } from '../vms/testing/vm-fleet.js';
import { type BalancerDeps, recordSamples } from './balancer.service.js';
import { DEFAULT_BALANCER_SETTINGS } from './plan.js';
import { LoadFeeder, type SimPool, simPool } from './testing/sim-pool.js';

/** The balancer's API: settings on hardware pools, `pinned` on VMs, the plan and applying a recommended move. */

const live = new LiveView();
let f: Fleet;
let deps: BalancerDeps;
let pool: SimPool;
let admin: User;
let member: User;
let monitor: User;

beforeAll(async () => {
  f = await createFleet({ liveView: live });
  deps = { db: f.t.database.db, liveView: live, log: createLogger('silent'), hostConnections: f.connections };
  pool = await simPool(f, 'api', { hosts: 3, vmsPerHost: 2 });
  const db = f.t.database.db;
  admin = await createUserWithToken(db, { username: 'pool-admin' });
  member = await createUserWithToken(db, { username: 'pool-user' });
  monitor = await createUserWithToken(db, { username: 'pool-monitor' });
  await grantRole(db, pool.hw, admin.id, 'admin');
  await grantRole(db, pool.hw, member.id, 'user');
  await grantRole(db, pool.hw, monitor.id, 'monitor');
});
afterAll(() => f?.close());

const patch = (balancer: unknown, as: User = admin, id = pool.hw) =>
  f.request(as, 'PATCH', `/api/v1/pools/${id}`, { balancer });

describe('settings', () => {
  test('off by default, the defaults shown; a VM pool has none', async () => {
    const hw = await f.request(admin, 'GET', `/api/v1/pools/${pool.hw}`);
    expect(hw.body.balancer).toEqual(DEFAULT_BALANCER_SETTINGS);
    expect(hw.body.balancer.mode).toBe('off');
    const vmPool = await f.request(admin, 'GET', `/api/v1/pools/${pool.vmPool}`);
    expect(vmPool.body.balancer).toBeNull();
  });

  test('a change merges into what was set, is answered by GET and audited', async () => {
    const first = await patch({ mode: 'recommend', windowSeconds: 600, weights: { memory: 0.2 } });
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    const second = await patch({ policy: 'pack', maxConcurrentMigrations: 3 });
    expect(second.status, JSON.stringify(second.body)).toBe(200);
    const got = (await f.request(admin, 'GET', `/api/v1/pools/${pool.hw}`)).body.balancer;
    expect(got).toMatchObject({
      mode: 'recommend',
      policy: 'pack',
      windowSeconds: 600,
      maxConcurrentMigrations: 3,
      coolDownSeconds: DEFAULT_BALANCER_SETTINGS.coolDownSeconds,
      weights: { cpuUsage: 0.6, cpuAllocation: 0.1, memory: 0.2 },
    });
    const audited = await f.t.database.db
      .selectFrom('audit_log')
      .select(['user_id', 'before', 'after'])
      .where('action', '=', 'pool.update')
      .where('entity_id', '=', String(pool.hw))
      .orderBy('id', 'desc')
      .executeTakeFirstOrThrow();
    expect(audited.user_id).toBe(admin.id);
    expect((audited.before as { balancer: { policy: string } }).balancer.policy).toBe('balance');
    expect((audited.after as { balancer: { policy: string } }).balancer.policy).toBe('pack');
    // null: back to the defaults.
    expect((await patch(null)).status).toBe(200);
    const reset = (await f.request(admin, 'GET', `/api/v1/pools/${pool.hw}`)).body.balancer;
    expect(reset).toEqual(DEFAULT_BALANCER_SETTINGS);
  });

  test('unknown settings are dropped, as everywhere in the API', async () => {
    const res = await patch({ sneaky: true, weights: { cpu: 1 } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.balancer).toEqual(DEFAULT_BALANCER_SETTINGS);
  });

  test.each([
    [{ mode: 'auto' }, 'mode'],
    [{ policy: 'spread' }, 'policy'],
    [{ windowSeconds: 10 }, 'windowSeconds'],
    [{ windowSeconds: 1.5 }, 'windowSeconds'],
    [{ highCpuPercent: 150 }, 'highCpuPercent'],
    [{ maxConcurrentMigrations: 0 }, 'maxConcurrentMigrations'],
    [{ coolDownSeconds: -1 }, 'coolDownSeconds'],
    ['automatic', 'balancer'],
  ])('%j is refused with 400', async (balancer, field) => {
    const res = await patch(balancer);
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(JSON.stringify(res.body)).toContain(field);
  });

  test.each([
    [{ hysteresisPercent: 30, highCpuPercent: 30 }, 'balancer.hysteresisPercent'],
    [{ lowCpuPercent: 70 }, 'balancer.lowCpuPercent'],
    [{ packMaxCpuPercent: 90 }, 'balancer.packMaxCpuPercent'],
    [{ failureBackoffSeconds: 7200, maxFailureBackoffSeconds: 3600 }, 'balancer.maxFailureBackoffSeconds'],
    [{ maxMigrationsPerHost: 3 }, 'balancer.maxMigrationsPerHost'],
    [{ weights: { cpuUsage: 0, cpuAllocation: 0, memory: 0 } }, 'balancer.weights'],
  ])('contradictory %j is refused with 400 naming %s, nothing stored', async (balancer, field) => {
    const res = await patch(balancer);
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.field).toBe(field);
    const got = (await f.request(admin, 'GET', `/api/v1/pools/${pool.hw}`)).body.balancer;
    expect(got).toEqual(DEFAULT_BALANCER_SETTINGS);
  });

  test('only hardware pools have one; only pool admins set it or see the plan', async () => {
    const onVmPool = await patch({ mode: 'recommend' }, admin, pool.vmPool);
    expect(onVmPool.status).toBe(400);
    expect(onVmPool.body.field).toBe('balancer');
    expect((await patch({ mode: 'recommend' }, member)).status).toBe(403);
    expect((await patch({ mode: 'recommend' }, monitor)).status).toBe(403);
    expect((await f.request(member, 'GET', `/api/v1/pools/${pool.hw}/balance`)).status).toBe(403);
    expect((await f.request(monitor, 'GET', `/api/v1/pools/${pool.hw}/balance`)).status).toBe(403);
    const apply = await f.request(member, 'POST', `/api/v1/pools/${pool.hw}/balance/apply`, {
      vmId: pool.vms[0].id,
    });
    expect(apply.status).toBe(403);
    const outsider = await createUserWithToken(f.t.database.db, { username: 'outsider' });
    expect((await f.request(outsider, 'GET', `/api/v1/pools/${pool.hw}/balance`)).status).toBe(404);
    const vmPoolPlan = await f.request(admin, 'GET', `/api/v1/pools/${pool.vmPool}/balance`);
    expect(vmPoolPlan.status).toBe(409);
  });
});

describe('pinned', () => {
  test('false by default; set at creation and by PATCH; answered by GET; checked', async () => {
    const made = await f.request(f.admin, 'POST', '/api/v1/vms', {
      name: 'pinned-one',
      poolId: pool.vmPool,
      vcpus: 1,
      memoryMiB: 512,
      nics: 0,
      pinned: true,
    });
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    expect((await f.request(f.admin, 'GET', `/api/v1/vms/${made.body.id}`)).body.pinned).toBe(true);
    const vm = pool.vms[0].id;
    expect((await f.request(f.admin, 'GET', `/api/v1/vms/${vm}`)).body.pinned).toBe(false);
    expect((await f.request(f.admin, 'PATCH', `/api/v1/vms/${vm}`, { pinned: true })).status).toBe(200);
    expect((await f.request(f.admin, 'GET', `/api/v1/vms/${vm}`)).body.pinned).toBe(true);
    expect((await f.request(f.admin, 'PATCH', `/api/v1/vms/${vm}`, { pinned: false })).status).toBe(200);
    expect((await f.request(f.admin, 'GET', `/api/v1/vms/${vm}`)).body.pinned).toBe(false);
    expect((await f.request(f.admin, 'PATCH', `/api/v1/vms/${vm}`, { pinned: 'yes' })).status).toBe(400);
  });
});

describe('the plan and apply', () => {
  test('a hot host: GET shows the move; apply starts it through the migrate task, with its reason', async () => {
    // Six minutes of figures up to now: host api-0's two VMs at 3.6 CPUs each of 8 (92 %), the others idle.
    const feeder = new LoadFeeder(live, f);
    const now = Date.now();
    for (let m = 7; m >= 0; m--) {
      const at = now - m * 60_000;
      await feeder.feed(pool, at, (vm) => (vm.name.startsWith('api-vm0-') ? 3.6 : 0.2));
      await recordSamples(deps, at);
    }
    const vmOff = await f.request(admin, 'POST', `/api/v1/pools/${pool.hw}/balance/apply`, {
      vmId: pool.vms[0].id,
    });
    expect(vmOff.status).toBe(409);
    expect(vmOff.body.code ?? vmOff.body.error).toBe('balancer_mode');

    // mode off: the dry run shows what recommend would.
    const dry = await f.request(admin, 'GET', `/api/v1/pools/${pool.hw}/balance`);
    expect(dry.status, JSON.stringify(dry.body)).toBe(200);
    expect(dry.body.mode).toBe('off');
    expect(dry.body.recommendations).toHaveLength(1);

    expect((await patch({ mode: 'recommend' })).status).toBe(200);
    const plan = (await f.request(admin, 'GET', `/api/v1/pools/${pool.hw}/balance`)).body;
    expect(plan.imbalance).toBeGreaterThan(0);
    expect(plan.recommendations).toHaveLength(1);
    const [r] = plan.recommendations;
    expect(r.fromHostId).toBe(pool.hosts[0].id);
    expect(r.imbalanceAfter).toBeLessThan(plan.imbalance);
    expect(r.reason).toMatch(
      /^move vm api-vm0-\d \(\d+\) from host api-0 \(\d+\) \(CPU 9\d % for \d+ min\) to host api-[12]/,
    );

    const other = pool.vms.find((v) => v.name === 'api-vm1-0')!.id;
    const notRecommended = await f.request(admin, 'POST', `/api/v1/pools/${pool.hw}/balance/apply`, {
      vmId: other,
    });
    expect(notRecommended.status).toBe(409);
    const unknown = await f.request(admin, 'POST', `/api/v1/pools/${pool.hw}/balance/apply`, {
      vmId: 999999,
    });
    expect(unknown.status).toBe(404);
    expect(
      (await f.request(admin, 'POST', `/api/v1/pools/${pool.hw}/balance/apply`, { vmId: 'x' })).status,
    ).toBe(400);

    const applied = await f.request(admin, 'POST', `/api/v1/pools/${pool.hw}/balance/apply`, {
      vmId: r.vmId,
    });
    expect(applied.status, JSON.stringify(applied.body)).toBe(202);
    const task = (await f.request(admin, 'GET', `/api/v1/tasks/${applied.body.taskId}`)).body;
    expect(task).toMatchObject({ action: 'migrate', targetId: r.vmId });
    expect(task.args.hostId).toBe(r.toHostId);
    expect(task.args.reason).toBe(r.reason.replace(/^move /, 'moved '));
    const vm = (await f.request(admin, 'GET', `/api/v1/vms/${r.vmId}`)).body;
    expect(vm).toMatchObject({ state: 'migrating', migrationHostId: r.toHostId });
    const audited = await f.t.database.db
      .selectFrom('audit_log')
      .select(['user_id', 'after'])
      .where('action', '=', 'balancer.apply')
      .where('entity_id', '=', String(r.vmId))
      .executeTakeFirstOrThrow();
    expect(audited.user_id).toBe(admin.id);
    expect((audited.after as { reason: string }).reason).toBe(task.args.reason);
    // The move in flight takes the pool's and the host's caps: nothing more is recommended from that host now.
    const after = (await f.request(admin, 'GET', `/api/v1/pools/${pool.hw}/balance`)).body;
    expect(after.migrationsInFlight).toBe(1);
    expect(after.recommendations.filter((x: { vmId: number }) => x.vmId === r.vmId)).toEqual([]);
  });
});
