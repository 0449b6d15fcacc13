import { access, rename } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createPool, createUserWithToken, grantRole } from '../../lib/testing/users.js';
import { allocationDrift } from '../placement/placement.repository.js';
import type { RunningWorker } from '../tasks/worker.js';
import { createFleet, type Fleet, insertImage, insertVolumes, type User } from './testing/vm-fleet.js';

let f: Fleet;
let worker: RunningWorker;
let owner: User;
let stranger: User;
let rack: number;
let team: number;
let h1: { id: number; uri: string };
let h2: { id: number; uri: string };
let volumes: number[];
let image: number;

beforeAll(async () => {
  f = await createFleet();
  const db = f.t.database.db;
  rack = await createPool(db, { name: 'rack' });
  team = await createPool(db, { name: 'team', kind: 'vm', parentId: rack });
  owner = await createUserWithToken(db, { username: 'owner' });
  stranger = await createUserWithToken(db, { username: 'stranger' });
  await grantRole(db, team, owner.id, 'user');
  h1 = await f.addHost(rack, { name: 'h1', cpus: 8, memoryMiB: 16384 });
  h2 = await f.addHost(rack, { name: 'h2', cpus: 8, memoryMiB: 16384 });
  volumes = await insertVolumes(f, rack, [10, 20, 5]);
  image = await insertImage(f, 'debian-netinst');
  worker = await f.worker();
});
afterAll(async () => {
  // Whatever happened above, the allocations the triggers kept are what the VMs hold.
  expect(await allocationDrift(f.t.database.db)).toEqual([]);
  await f.close();
});

const domainOn = async (host: { uri: string }, uuid: string) =>
  (await f.connections.get(host.uri)).domain(uuid);

async function act(user: User, vmId: number, body: Record<string, unknown>) {
  const res = await f.request(user, 'POST', `/api/v1/vms/${vmId}/actions`, body);
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  const task = await f.waitTask(res.body.taskId, user);
  return task;
}

const getVm = async (id: number, user: User = owner) =>
  (await f.request(user, 'GET', `/api/v1/vms/${id}`)).body;

describe('creating VMs', () => {
  test('with volumes, NICs and an install image: network boot first, unique MACs, storage claimed', async () => {
    const res = await f.request(owner, 'POST', '/api/v1/vms', {
      name: 'web1',
      poolId: team,
      vcpus: 2,
      memoryMiB: 2048,
      volumes: volumes.slice(0, 2),
      nics: [{ network: 'default' }, {}],
      imageId: image,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const vm = await getVm(res.body.id);
    expect(vm).toMatchObject({
      name: 'web1',
      state: 'defined',
      hostId: null,
      vcpus: 2,
      memoryMiB: 2048,
      bootNetwork: true,
      image: { id: image, name: 'debian-netinst', kind: 'network' },
    });
    expect(vm.volumes.map((v: { id: number }) => v.id)).toEqual(volumes.slice(0, 2));
    expect(vm.nics).toHaveLength(2);
    for (const nic of vm.nics) expect(nic.mac).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
    expect(new Set(vm.nics.map((n: { mac: string }) => n.mac)).size).toBe(2);
    const usage = await f.request(f.admin, 'GET', `/api/v1/pools/${team}/usage`);
    expect(usage.body.total.storageGiB.used).toBe(30);
  });

  test('a volume belongs to at most one VM; a bad body names the field', async () => {
    const taken = await f.request(owner, 'POST', '/api/v1/vms', {
      name: 'web2',
      poolId: team,
      vcpus: 1,
      memoryMiB: 512,
      volumes: [volumes[0]],
    });
    expect(taken.status).toBe(409);
    expect(taken.body).toMatchObject({ error: 'volume_in_use', volumes: [volumes[0]] });
    const bad = await f.request(owner, 'POST', '/api/v1/vms', {
      name: 'x',
      poolId: team,
      vcpus: 0,
      memoryMiB: 512,
    });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toContain('vcpus');
    const hardware = await f.request(owner, 'POST', '/api/v1/vms', {
      name: 'x',
      poolId: rack,
      vcpus: 1,
      memoryMiB: 512,
    });
    expect(hardware.status).toBe(404);
  });

  test('others do not see it', async () => {
    const list = await f.request(stranger, 'GET', '/api/v1/vms');
    expect(list.body).toEqual({ items: [], total: 0 });
    const mine = await f.request(owner, 'GET', '/api/v1/vms');
    expect(mine.body.items.map((v: { name: string }) => v.name)).toEqual(['web1']);
  });
});

describe('the life of a VM', () => {
  let vm: { id: number; uuid: string };

  beforeAll(async () => {
    const res = await f.request(owner, 'POST', '/api/v1/vms', {
      name: 'life',
      poolId: team,
      vcpus: 1,
      memoryMiB: 1024,
      volumes: [volumes[2]],
      nics: 1,
    });
    vm = await getVm(res.body.id);
  });

  test('start: placed on a host, defined from the record and running', async () => {
    const task = await act(owner, vm.id, { action: 'start' });
    expect(task).toMatchObject({
      state: 'done',
      action: 'start',
      targetType: 'vm',
      targetId: vm.id,
      progress: 1,
    });
    const now = await getVm(vm.id);
    expect(now.state).toBe('running');
    expect([h1.id, h2.id]).toContain(now.hostId);
    const host = now.hostId === h1.id ? h1 : h2;
    expect(await domainOn(host, vm.uuid)).toMatchObject({ state: 'running', vcpus: 1, memoryMiB: 1024 });
  });

  test('the wrong state answers 409 naming the current state', async () => {
    const res = await f.request(owner, 'POST', `/api/v1/vms/${vm.id}/actions`, { action: 'resume' });
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ error: 'invalid_state', state: 'running' });
    expect(res.body.message).toContain('it is running');
    const del = await f.request(owner, 'DELETE', `/api/v1/vms/${vm.id}`);
    expect(del.status).toBe(409);
  });

  test('suspend, resume, save, restore, shutdown, start, destroy', async () => {
    const steps: Array<[string, string]> = [
      ['suspend', 'paused'],
      ['resume', 'running'],
      ['save', 'saved'],
      ['restore', 'running'],
      ['shutdown', 'shutoff'],
      ['start', 'running'],
      ['destroy', 'shutoff'],
    ];
    for (const [action, state] of steps) {
      const task = await act(owner, vm.id, { action });
      expect(task.state, `${action}: ${task.error}`).toBe('done');
      const now = await getVm(vm.id);
      expect(now.state, action).toBe(state);
      const host = now.hostId === h1.id ? h1 : h2;
      const domain = await domainOn(host, vm.uuid);
      expect(domain?.state, action).toBe(state === 'saved' ? 'shutoff' : state);
      if (action === 'save') await access(now.savePath);
    }
  });

  test('save with the save directory missing on this machine fails naming HERD_SAVE_DIR; the VM keeps running', async () => {
    expect((await act(owner, vm.id, { action: 'start' })).state).toBe('done');
    const moved = `${f.saveDir}.away`;
    await rename(f.saveDir, moved);
    try {
      const task = await act(owner, vm.id, { action: 'save' });
      expect(task.state).toBe('failed');
      expect(task.error).toContain(
        `the save directory ${f.saveDir} (HERD_SAVE_DIR) does not exist on this machine`,
      );
      expect(await getVm(vm.id)).toMatchObject({ state: 'running', savePath: null });
    } finally {
      await rename(moved, f.saveDir);
    }
    expect((await act(owner, vm.id, { action: 'destroy' })).state).toBe('done');
  });

  test('every action asked for is in the audit log, by whom, with its task', async () => {
    const res = await f.request(f.admin, 'GET', `/api/v1/audit?entityType=vm&entityId=${vm.id}&limit=1000`);
    expect(res.status).toBe(200);
    const entries = res.body.items as Array<{
      action: string;
      userId: number | null;
      after: { taskId: number };
    }>;
    const actions = entries.map((e) => e.action).reverse();
    expect(actions).toEqual(
      expect.arrayContaining([
        'vm.start',
        'vm.suspend',
        'vm.resume',
        'vm.save',
        'vm.restore',
        'vm.shutdown',
        'vm.destroy',
      ]),
    );
    const tasks = await f.t.database.db
      .selectFrom('tasks')
      .select(['id', 'action', 'user_id'])
      .where('target_type', '=', 'vm')
      .where('target_id', '=', vm.id)
      .orderBy('id')
      .execute();
    const logged = entries.filter((e) => e.action !== 'vm.create' && e.action !== 'vm.update');
    expect(logged.map((e) => [e.after.taskId, e.action, e.userId]).sort()).toEqual(
      tasks.map((t) => [t.id, `vm.${t.action}`, t.user_id]).sort(),
    );
    expect(logged.every((e) => e.userId === owner.id)).toBe(true);
  });

  test('delete a stopped VM: undefined on its host, volumes freed', async () => {
    const before = await getVm(vm.id);
    const host = before.hostId === h1.id ? h1 : h2;
    const res = await f.request(owner, 'DELETE', `/api/v1/vms/${vm.id}`);
    expect(res.status).toBe(202);
    expect((await f.waitTask(res.body.taskId)).state).toBe('done');
    expect((await f.request(owner, 'GET', `/api/v1/vms/${vm.id}`)).status).toBe(404);
    expect(await domainOn(host, vm.uuid)).toBeNull();
    const vol = await f.t.database.db
      .selectFrom('volumes')
      .select('vm_id')
      .where('id', '=', volumes[2])
      .executeTakeFirst();
    expect(vol?.vm_id).toBeNull();
  });
});

describe('migration', () => {
  let vm: { id: number; uuid: string };

  beforeAll(async () => {
    const res = await f.request(owner, 'POST', '/api/v1/vms', {
      name: 'mover',
      poolId: team,
      vcpus: 1,
      memoryMiB: 512,
    });
    vm = await getVm(res.body.id);
    await act(f.admin, vm.id, { action: 'start', hostId: h1.id });
  });

  test('live migration on the test driver fails with its clear error; the VM stays running where it was', async () => {
    const task = await act(f.admin, vm.id, { action: 'migrate', hostId: h2.id });
    expect(task.state).toBe('failed');
    expect(task.error).toMatch(/live migration not supported/);
    expect(task.error).toContain('VM state read again from libvirt: running on h1');
    expect(await getVm(vm.id)).toMatchObject({ state: 'running', hostId: h1.id, migrationHostId: null });
  });

  test('a user may not migrate', async () => {
    const res = await f.request(owner, 'POST', `/api/v1/vms/${vm.id}/actions`, { action: 'migrate' });
    expect(res.status).toBe(403);
  });

  test('cold migration of a stopped VM moves its definition', async () => {
    await act(owner, vm.id, { action: 'shutdown' });
    const task = await act(f.admin, vm.id, { action: 'migrate' });
    expect(task.state, task.error).toBe('done');
    expect(task.result).toMatchObject({ live: false, from: h1.id, to: h2.id });
    expect(await getVm(vm.id)).toMatchObject({ state: 'shutoff', hostId: h2.id });
    expect(await domainOn(h1, vm.uuid)).toBeNull();
    expect(await domainOn(h2, vm.uuid)).toMatchObject({ state: 'shutoff' });
  });

  test('cold migration of a saved VM takes its saved image along; it restores on the destination', async () => {
    await act(owner, vm.id, { action: 'start', hostId: undefined });
    const started = await getVm(vm.id);
    await act(owner, vm.id, { action: 'save' });
    const from = started.hostId === h1.id ? h1 : h2;
    const to = started.hostId === h1.id ? h2 : h1;
    const task = await act(f.admin, vm.id, { action: 'migrate', hostId: to.id });
    expect(task.state, task.error).toBe('done');
    const saved = await getVm(vm.id);
    expect(saved).toMatchObject({ state: 'saved', hostId: to.id });
    expect(await domainOn(from, vm.uuid)).toBeNull();
    const restore = await act(owner, vm.id, { action: 'restore' });
    expect(restore.state, restore.error).toBe('done');
    expect(await getVm(vm.id)).toMatchObject({ state: 'running', hostId: to.id, savePath: null });
    expect(await domainOn(to, vm.uuid)).toMatchObject({ state: 'running' });
  });
});

describe('tasks', () => {
  test('transitional state while queued; cancelling puts the VM back', async () => {
    const res = await f.request(owner, 'POST', '/api/v1/vms', {
      name: 'patient',
      poolId: team,
      vcpus: 1,
      memoryMiB: 512,
    });
    const id = res.body.id;
    await worker.stop();
    try {
      const asked = await f.request(owner, 'POST', `/api/v1/vms/${id}/actions`, { action: 'start' });
      expect(asked.status).toBe(202);
      const vm = await getVm(id);
      expect(vm).toMatchObject({ state: 'starting', taskId: asked.body.taskId });
      expect(vm.hostId).not.toBeNull();
      const queued = await f.request(owner, 'GET', `/api/v1/tasks/${asked.body.taskId}`);
      expect(queued.body).toMatchObject({ state: 'queued', action: 'start', userId: owner.id, poolId: team });
      const list = await f.request(owner, 'GET', `/api/v1/tasks?state=queued&poolId=${team}`);
      expect(list.body.items.map((t: { id: number }) => t.id)).toEqual([asked.body.taskId]);
      expect((await f.request(stranger, 'GET', `/api/v1/tasks/${asked.body.taskId}`)).status).toBe(404);

      const cancelled = await f.request(owner, 'POST', `/api/v1/tasks/${asked.body.taskId}/cancel`);
      expect(cancelled.status).toBe(200);
      expect(cancelled.body.state).toBe('cancelled');
      expect(await getVm(id)).toMatchObject({ state: 'defined', hostId: null, taskId: null });
      const again = await f.request(owner, 'POST', `/api/v1/tasks/${asked.body.taskId}/cancel`);
      expect(again.status).toBe(409);
      expect(again.body).toMatchObject({ error: 'invalid_state', state: 'cancelled' });
    } finally {
      worker = await f.worker();
    }
  });

  test('lists filter by state and action', async () => {
    const failed = await f.request(f.admin, 'GET', '/api/v1/tasks?state=failed&action=migrate');
    expect(failed.body.total).toBe(1);
    expect(failed.body.items[0]).toMatchObject({ state: 'failed', action: 'migrate' });
    const mine = await f.request(owner, 'GET', `/api/v1/tasks?poolId=${team}&limit=500`);
    expect(mine.body.total).toBeGreaterThan(5);
    expect((await f.request(stranger, 'GET', '/api/v1/tasks')).body.total).toBe(0);
  });
});
