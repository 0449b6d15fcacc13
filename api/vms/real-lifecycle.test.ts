import { access } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { cutConnection } from '../../lib/testing/libvirt-hosts.js';
import { waitFor } from '../../lib/testing/wait.js';
import { createRealFleet, type RealFleet, type RealVm } from './testing/real-fleet.js';

/**
 * A VM's whole life through herd's API and task worker on a real libvirtd (one guest, booted twice), and herd
 * following what an operator does with virsh outside herd: the host monitor's heartbeat is an hour here, so
 * only libvirt's domain events can bring those changes in.
 */
let r: RealFleet;
let vm: RealVm;

beforeAll(async () => {
  r = await createRealFleet();
  vm = await r.createVm('life');
});
afterAll(async () => {
  await r?.close();
});

const libvirtState = async (index = 0) => (await r.virsh(index, 'domstate', vm.uuid)).trim();
const herdState = async () => (await r.vm(vm.id)).state;

/** Waits for herd to show `state` and answers how long it took. */
async function herdFollows(state: string, timeoutMs = 5_000): Promise<number> {
  const from = Date.now();
  await waitFor(async () => (await herdState()) === state, timeoutMs, 25);
  return Date.now() - from;
}

describe('a VM on a real libvirtd, through the API and the task worker', () => {
  test('start: defined on the chosen host, running, the guest boots', async () => {
    expect(await herdState()).toBe('defined');
    const task = await r.act(vm.id, { action: 'start', hostId: r.hosts[0].id });
    expect(task, JSON.stringify(task)).toMatchObject({ state: 'done', progress: 1 });
    expect(await r.vm(vm.id)).toMatchObject({ state: 'running', hostId: r.hosts[0].id });
    expect(await libvirtState()).toBe('running');
    await r.signals.waitFor(vm.readyName);
  });

  test('suspend and resume', async () => {
    expect((await r.act(vm.id, { action: 'suspend' })).state).toBe('done');
    expect(await herdState()).toBe('paused');
    expect(await libvirtState()).toBe('paused');
    expect((await r.act(vm.id, { action: 'resume' })).state).toBe('done');
    expect(await herdState()).toBe('running');
    expect(await libvirtState()).toBe('running');
  });

  test('save to a file and restore from it: the guest goes on', async () => {
    const saved = await r.act(vm.id, { action: 'save' });
    expect(saved.state, saved.error).toBe('done');
    const answer = await r.vm(vm.id);
    expect(answer.state).toBe('saved');
    await access(answer.savePath);
    expect(await libvirtState()).toBe('shut off');
    const restored = await r.act(vm.id, { action: 'restore' });
    expect(restored.state, restored.error).toBe('done');
    expect(await r.vm(vm.id)).toMatchObject({ state: 'running', savePath: null, hostId: r.hosts[0].id });
    expect(await libvirtState()).toBe('running');
  });

  test('virsh suspend and resume outside herd: herd follows from the domain event, not the heartbeat', async () => {
    await r.virsh(0, 'suspend', vm.uuid);
    const paused = await herdFollows('paused');
    await r.virsh(0, 'resume', vm.uuid);
    const resumed = await herdFollows('running');
    // The heartbeat is an hour away: only the event can have told. Well under a second on a quiet machine.
    expect(paused).toBeLessThan(3_000);
    expect(resumed).toBeLessThan(3_000);
  });

  test('shutdown: the guest answers ACPI and powers off', async () => {
    const task = await r.act(vm.id, { action: 'shutdown', timeoutSeconds: 90 });
    expect(task.state, task.error).toBe('done');
    expect(task.result).toEqual({ forced: false });
    expect(await herdState()).toBe('shutoff');
    expect(await libvirtState()).toBe('shut off');
  });

  test('start again, then power off (destroy)', async () => {
    expect((await r.act(vm.id, { action: 'start', hostId: r.hosts[0].id })).state).toBe('done');
    expect(await libvirtState()).toBe('running');
    const off = await r.act(vm.id, { action: 'destroy' });
    expect(off.state, off.error).toBe('done');
    expect(await herdState()).toBe('shutoff');
    expect(await libvirtState()).toBe('shut off');
  });

  test('virsh start and destroy outside herd: herd follows', async () => {
    await r.virsh(0, 'start', vm.uuid);
    await herdFollows('running');
    expect((await r.vm(vm.id)).startedAt).not.toBeNull();
    await r.virsh(0, 'destroy', vm.uuid);
    await herdFollows('shutoff');
  });

  test('a cut connection comes back, its event subscriptions registered again, and still feeds herd', async () => {
    const watch = r.monitor!.domainEventWatch!;
    expect(watch.watched().sort()).toEqual(r.hosts.map((h) => h.uri).sort());
    await cutConnection(await r.f.connections.get(r.hosts[0].uri));
    await r.virsh(0, 'start', vm.uuid);
    await herdFollows('running');
    expect((await r.act(vm.id, { action: 'destroy' })).state).toBe('done');
  });

  test('delete: the domain is undefined and the VM gone', async () => {
    const res = await r.f.request(r.f.admin, 'DELETE', `/api/v1/vms/${vm.id}`);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const task = await r.f.waitTask(res.body.taskId, r.f.admin, 60_000);
    expect(task.state, task.error).toBe('done');
    expect((await r.f.request(r.f.admin, 'GET', `/api/v1/vms/${vm.id}`)).status).toBe(404);
    await expect(r.virsh(0, 'dominfo', vm.uuid)).rejects.toThrow(/failed to get domain|not found/i);
  });
});
