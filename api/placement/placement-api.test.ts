import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LiveView } from '../../ingest/live-view.js';
import { createUserWithToken, grantRole } from '../../lib/testing/users.js';
import { createFleet, type Fleet, type User } from '../vms/testing/vm-fleet.js';
import { allocationDrift } from './placement.repository.js';

let f: Fleet;
const live = new LiveView();
let user: User;

beforeAll(async () => {
  f = await createFleet({ liveView: live });
  user = await createUserWithToken(f.t.database.db, { username: 'alice' });
  await f.worker();
});
afterAll(async () => {
  // Whatever happened above, the allocations the triggers kept are what the VMs hold.
  expect(await allocationDrift(f.t.database.db)).toEqual([]);
  await f.close();
});

/** A hardware pool with a policy, a VM pool in it where `user` may create VMs, and hosts with ratio 1. */
async function rack(
  name: string,
  policy: 'pack' | 'spread' | 'load',
  hosts: Array<{ cpus: number; memoryMiB: number }>,
) {
  const hw = await f.request(f.admin, 'POST', '/api/v1/pools', {
    name,
    kind: 'hardware',
    placementPolicy: policy,
  });
  expect(hw.status, JSON.stringify(hw.body)).toBe(201);
  const vmPool = await f.request(f.admin, 'POST', '/api/v1/pools', {
    name: `${name}-vms`,
    kind: 'vm',
    parentId: hw.body.id,
  });
  await grantRole(f.t.database.db, vmPool.body.id, user.id, 'user');
  const ids: number[] = [];
  for (const [i, h] of hosts.entries()) {
    const { id } = await f.addHost(hw.body.id, { name: `${name}-${i + 1}`, ...h });
    const patched = await f.request(f.admin, 'PATCH', `/api/v1/hosts/${id}`, {
      cpuAllocationRatio: 1,
      ramAllocationRatio: 1,
    });
    expect(patched.status).toBe(200);
    ids.push(id);
  }
  return { hw: hw.body.id as number, vmPool: vmPool.body.id as number, hosts: ids };
}

async function createVms(poolId: number, n: number, size = { vcpus: 1, memoryMiB: 1024 }, prefix = 'vm') {
  const ids: number[] = [];
  for (let i = 0; i < n; i++) {
    const res = await f.request(user, 'POST', '/api/v1/vms', {
      name: `${prefix}${i}`,
      poolId,
      ...size,
      nics: 0,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    ids.push(res.body.id);
  }
  return ids;
}

async function startAndWait(vmId: number, as: User = user) {
  const res = await f.request(as, 'POST', `/api/v1/vms/${vmId}/actions`, { action: 'start' });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  const task = await f.waitTask(res.body.taskId, as);
  expect(task.state, task.error).toBe('done');
  return (await f.request(as, 'GET', `/api/v1/vms/${vmId}`)).body.hostId as number;
}

describe('policies', () => {
  test('pack fills the first host before the next; spread alternates', async () => {
    const packed = await rack('packed', 'pack', [
      { cpus: 2, memoryMiB: 4096 },
      { cpus: 2, memoryMiB: 4096 },
    ]);
    const spread = await rack('spread', 'spread', [
      { cpus: 2, memoryMiB: 4096 },
      { cpus: 2, memoryMiB: 4096 },
    ]);
    const onPacked = [];
    for (const id of await createVms(packed.vmPool, 3, undefined, 'p')) onPacked.push(await startAndWait(id));
    const onSpread = [];
    for (const id of await createVms(spread.vmPool, 3, undefined, 's')) onSpread.push(await startAndWait(id));
    expect(onPacked).toEqual([packed.hosts[0], packed.hosts[0], packed.hosts[1]]);
    expect(onSpread).toEqual([spread.hosts[0], spread.hosts[1], spread.hosts[0]]);
  });

  test('load picks the host with the lowest live load and CPU use', async () => {
    const loaded = await rack('loaded', 'load', [
      { cpus: 4, memoryMiB: 8192 },
      { cpus: 4, memoryMiB: 8192 },
    ]);
    feed('loaded-1', { load1: 3.5, freeMiB: 6000 });
    feed('loaded-2', { load1: 0.2, freeMiB: 6000 });
    const [vm] = await createVms(loaded.vmPool, 1, undefined, 'l');
    expect(await startAndWait(vm)).toBe(loaded.hosts[1]);
    const explained = (await f.request(f.admin, 'GET', `/api/v1/vms/${vm}/placement`)).body;
    expect(explained.last.policy).toBe('load');
    expect(explained.last.candidates[0]).toMatchObject({ hostname: 'loaded-2', rank: 1 });
    expect(
      explained.hypothetical.candidates.find((c: { hostname: string }) => c.hostname === 'loaded-1').live,
    ).toMatchObject({
      load1: 3.5,
    });
  });
});

/** One collectd value list per figure placement reads, as ingest would record them. */
function feed(host: string, figures: { load1: number; freeMiB: number }) {
  const base = { host, time: Date.now() / 1000, interval: 10, pluginInstance: '', typeInstance: '' };
  live.update(
    {
      ...base,
      plugin: 'load',
      type: 'load',
      dsTypes: ['gauge', 'gauge', 'gauge'],
      values: [figures.load1, 1, 1],
    },
    ['shortterm', 'midterm', 'longterm'],
  );
  live.update(
    {
      ...base,
      plugin: 'memory',
      type: 'memory',
      typeInstance: 'free',
      dsTypes: ['gauge'],
      values: [figures.freeMiB * 1024 * 1024],
    },
    ['value'],
  );
}

describe('filters and explanations', () => {
  let r: Awaited<ReturnType<typeof rack>>;
  let vms: number[];

  beforeAll(async () => {
    r = await rack('small', 'spread', [
      { cpus: 4, memoryMiB: 4096 },
      { cpus: 4, memoryMiB: 4096 },
      { cpus: 4, memoryMiB: 4096 },
    ]);
    vms = await createVms(r.vmPool, 3, { vcpus: 2, memoryMiB: 2048 }, 'x');
  });

  test('every candidate is explained: disabled, no room by inventory, no room by live usage, scores', async () => {
    await f.request(f.admin, 'PATCH', `/api/v1/hosts/${r.hosts[0]}`, { enabled: false });
    feed('small-2', { load1: 0.1, freeMiB: 1000 });
    const host = await startAndWait(vms[0]);
    expect(host).toBe(r.hosts[2]);
    const { body } = await f.request(f.admin, 'GET', `/api/v1/vms/${vms[0]}/placement`);
    expect(body.policy).toBe('spread');
    expect(body.last).toMatchObject({
      action: 'start',
      chosenHostId: r.hosts[2],
      request: { vcpus: 2, memoryMiB: 2048 },
    });
    const byHost = new Map(body.last.candidates.map((c: { hostId: number }) => [c.hostId, c]));
    expect(byHost.get(r.hosts[0])).toMatchObject({ eligible: false, reasons: ['disabled'], score: null });
    expect(byHost.get(r.hosts[1])).toMatchObject({
      hostname: 'small-2',
      eligible: false,
      reasons: ['live usage: 1000 MiB free now < 2048 MiB requested'],
    });
    expect(byHost.get(r.hosts[2])).toMatchObject({
      hostname: 'small-3',
      eligible: true,
      rank: 1,
      score: 0.5,
    });
    // The figures behind it, as they are now.
    const now = new Map(body.hypothetical.candidates.map((c: { hostId: number }) => [c.hostId, c]));
    expect(now.get(r.hosts[1])).toMatchObject({ live: { memoryFreeMiB: 1000 } });
    expect(now.get(r.hosts[2])).toMatchObject({
      inventory: { vcpus: { total: 4, ratio: 1, capacity: 4, allocated: 2 } },
    });
    // Now it runs: what migrating it would do (its own host is not a candidate).
    expect(body.hypothetical.action).toBe('migrate');
    expect(
      body.hypothetical.candidates.find((c: { hostId: number }) => c.hostId === r.hosts[2]).reasons,
    ).toContain('excluded: the VM is already on this host');
  });

  test('a host without room is refused with the reason, and the refusal is kept to explain', async () => {
    await startAndWait(vms[1]);
    // The admin sees each host's reason; the pool's user, who may not list the hardware pool's hosts, sees none
    // of them (no name, no figure).
    const res = await f.request(f.admin, 'POST', `/api/v1/vms/${vms[2]}/actions`, { action: 'start' });
    expect(res.status).toBe(409);
    expect(res.body.error).toBe('no_host_available');
    expect(res.body.message).toContain(
      'small-3 (' +
        r.hosts[2] +
        '): no room for vCPUs: 4 allocated + 2 requested > 4 capacity ((4 − 0 reserved) × 1)',
    );
    expect(res.body.candidates).toBe(3);
    const refused = await f.request(user, 'POST', `/api/v1/vms/${vms[2]}/actions`, { action: 'start' });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({
      error: 'no_host_available',
      message:
        "no host can take 2 vCPUs and 2048 MiB now (the reasons per host are shown to those who may list the hardware pool's hosts)",
    });
    expect(refused.body.candidates).toBeUndefined();
    expect(JSON.stringify(refused.body)).not.toMatch(/small-|MiB free|allocated|capacity/);
    const vm = (await f.request(user, 'GET', `/api/v1/vms/${vms[2]}`)).body;
    expect(vm).toMatchObject({ state: 'defined', hostId: null });
    const { body } = await f.request(f.admin, 'GET', `/api/v1/vms/${vms[2]}/placement`);
    expect(body.last).toMatchObject({ chosenHostId: null, action: 'start' });
    expect(body.last.message).toContain('no room for memory');
    // The VM's owner sees the outcome of both decisions, not the hosts behind them.
    const own = (await f.request(user, 'GET', `/api/v1/vms/${vms[2]}/placement`)).body;
    expect(own.last).toMatchObject({
      chosenHostId: null,
      action: 'start',
      candidates: [],
      message: refused.body.message,
    });
    expect(own.hypothetical).toMatchObject({ candidates: [], request: { vcpus: 2, memoryMiB: 2048 } });
    expect(JSON.stringify(own)).not.toMatch(/small-|MiB free|allocated|capacity|memoryFreeMiB/);
  });

  test('manual placement gets the checks', async () => {
    const res = await f.request(f.admin, 'POST', `/api/v1/vms/${vms[2]}/actions`, {
      action: 'start',
      hostId: r.hosts[0],
    });
    expect(res.status).toBe(409);
    expect(res.body.message).toMatch(/^host small-1 \(\d+\) cannot take 2 vCPUs and 2048 MiB: disabled$/);
    await f.request(f.admin, 'PATCH', `/api/v1/hosts/${r.hosts[0]}`, { enabled: true });
    const ok = await f.request(f.admin, 'POST', `/api/v1/vms/${vms[2]}/actions`, {
      action: 'start',
      hostId: r.hosts[0],
    });
    expect(ok.status).toBe(202);
    expect((await f.waitTask(ok.body.taskId)).state).toBe('done');
  });
});

describe('concurrent claims', () => {
  test('20 concurrent starts on hosts with room for 4 VMs: exactly 4 start', async () => {
    const r = await rack('tight', 'spread', [
      { cpus: 2, memoryMiB: 8192 },
      { cpus: 2, memoryMiB: 8192 },
    ]);
    const vms = await createVms(r.vmPool, 20, undefined, 't');
    const answers = await Promise.all(
      vms.map((id) => f.request(user, 'POST', `/api/v1/vms/${id}/actions`, { action: 'start' })),
    );
    const accepted = answers.filter((a) => a.status === 202);
    expect(accepted).toHaveLength(4);
    for (const a of answers.filter((x) => x.status !== 202)) {
      expect(a.status).toBe(409);
      expect(a.body.error).toBe('no_host_available');
    }
    for (const a of accepted) expect((await f.waitTask(a.body.taskId)).state).toBe('done');
    const running = await f.t.database.db
      .selectFrom('vms')
      .select(['host_id', (eb) => eb.fn.countAll<number>().as('n')])
      .where('pool_id', '=', r.vmPool)
      .where('state', '=', 'running')
      .groupBy('host_id')
      .orderBy('host_id')
      .execute();
    expect(running.map((x) => [x.host_id, Number(x.n)])).toEqual([
      [r.hosts[0], 2],
      [r.hosts[1], 2],
    ]);
  });
});
