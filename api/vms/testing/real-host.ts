import { expect } from 'vitest';
import type { Fleet, User } from './vm-fleet.js';

/**
 * For test files that drive the suite's real libvirtd through herd (lib/testing/hypervisor.ts): the host added
 * to a hardware pool, VMs made and acted on through the API, and their domains removed at the end (the
 * libvirtds are shared by every test file of a run).
 */
export async function addRealHost(f: Fleet, uri: string, poolId: number): Promise<number> {
  const host = await f.request(f.admin, 'POST', '/api/v1/hosts', { uri, poolId });
  expect(host.status, JSON.stringify(host.body)).toBe(201);
  return host.body.id;
}

/** `POST /api/v1/vms` as `user`, then the VM as herd answers it (id, UUID, first MAC). */
export async function createVm(
  f: Fleet,
  user: User,
  body: Record<string, unknown>,
): Promise<{ id: number; uuid: string; mac: string }> {
  const created = await f.request(user, 'POST', '/api/v1/vms', body);
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const vm = (await f.request(user, 'GET', `/api/v1/vms/${created.body.id}`)).body;
  return { id: vm.id, uuid: vm.uuid, mac: vm.nics[0]?.mac };
}

/** Asks for a VM action as `user` and waits for its task to be done. */
export async function act(f: Fleet, user: User, vmId: number, action: string, timeoutMs = 120_000) {
  const res = await f.request(user, 'POST', `/api/v1/vms/${vmId}/actions`, { action });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  const task = await f.waitTask(res.body.taskId, user, timeoutMs);
  expect(task.state, task.error ?? '').toBe('done');
}

/** Powers off and undefines the VM's domain if it is still on the host: never leave one behind. */
export async function removeDomain(f: Fleet, uri: string, uuid: string | undefined): Promise<void> {
  if (!uuid) return;
  const driver = await f.connections.get(uri);
  const d = await driver.domain(uuid).catch(() => null);
  if (d && d.state !== 'shutoff') await driver.destroy(uuid).catch(() => undefined);
  if (d) await driver.undefine(uuid).catch(() => undefined);
}
