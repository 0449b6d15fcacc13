import { afterAll, beforeAll, expect, test } from 'vitest';
import { createPool } from '../../lib/testing/users.js';
import { createFleet, type Fleet } from '../vms/testing/vm-fleet.js';

let f: Fleet;
let h1: { id: number; uri: string };
let h2: { id: number; uri: string };
let team: number;

beforeAll(async () => {
  f = await createFleet();
  const rack = await createPool(f.t.database.db, { name: 'rack' });
  team = await createPool(f.t.database.db, { name: 'team', kind: 'vm', parentId: rack });
  h1 = await f.addHost(rack, { name: 'ev1', cpus: 8, memoryMiB: 16384 });
  h2 = await f.addHost(rack, { name: 'ev2', cpus: 8, memoryMiB: 16384 });
  await f.worker();
});
afterAll(() => f.close());

async function vmOn(hostId: number, name: string, stopped: boolean): Promise<number> {
  const created = await f.request(f.admin, 'POST', '/api/v1/vms', {
    name,
    poolId: team,
    vcpus: 1,
    memoryMiB: 512,
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const id = created.body.id;
  for (const body of [{ action: 'start', hostId }, ...(stopped ? [{ action: 'destroy' }] : [])]) {
    const res = await f.request(f.admin, 'POST', `/api/v1/vms/${id}/actions`, body);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect((await f.waitTask(res.body.taskId)).state).toBe('done');
  }
  return id;
}

test('evacuate disables the host and migrates every VM off it', async () => {
  const stopped = await vmOn(h1.id, 'stopped', true);
  const running = await vmOn(h1.id, 'running', false);

  const res = await f.request(f.admin, 'POST', `/api/v1/hosts/${h1.id}/evacuate`);
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  expect(res.body.taskIds).toHaveLength(2);
  expect((await f.request(f.admin, 'GET', `/api/v1/hosts/${h1.id}`)).body.enabled).toBe(false);

  const [cold, live] = await Promise.all(res.body.taskIds.map((id: number) => f.waitTask(id)));
  // The stopped VM moves cold; the running one needs live migration, which the test driver refuses clearly.
  expect(cold.state, cold.error).toBe('done');
  expect((await f.request(f.admin, 'GET', `/api/v1/vms/${stopped}`)).body).toMatchObject({
    hostId: h2.id,
    state: 'shutoff',
  });
  expect(live.state).toBe('failed');
  expect(live.error).toContain(
    "live migration not supported by this host's driver (test); use cold migration",
  );
  expect((await f.request(f.admin, 'GET', `/api/v1/vms/${running}`)).body).toMatchObject({
    hostId: h1.id,
    state: 'running',
  });

  // The host keeps its running VM, so it cannot be removed yet.
  expect((await f.request(f.admin, 'DELETE', `/api/v1/hosts/${h1.id}`)).status).toBe(409);
});
