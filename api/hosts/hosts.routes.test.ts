import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LiveView } from '../../ingest/live-view.js';
import { createLogger } from '../../lib/log.js';
import { createTestApp, type TestApp } from '../../lib/testing/app.js';
import { writeTestHost } from '../../lib/testing/libvirt-hosts.js';
import { authHeader, createPool, createUserWithToken, grantRole } from '../../lib/testing/users.js';
import { HostConnections } from './driver/index.js';
import { HOST_STATE_EVENT, type HostStateEvent } from './host-events.js';

let t: TestApp;
let dir: string;
const connections = new HostConnections(createLogger('silent'));
const events = new EventEmitter();
const liveView = new LiveView();
let admin: { id: number; token: string };
let poolAdmin: { id: number; token: string };
let monitor: { id: number; token: string };
let stranger: { id: number; token: string };
let rack: number;
let otherRack: number;
let vmPool: number;
let uriAlpha: string;
let uriBeta: string;

beforeAll(async () => {
  t = await createTestApp({ deps: { hostConnections: connections, events, liveView } });
  dir = await mkdtemp(path.join(tmpdir(), 'herd-hosts-'));
  uriAlpha = await writeTestHost(dir, { name: 'alpha', cpus: 8, memoryMiB: 16384 });
  uriBeta = await writeTestHost(dir, { name: 'beta', cpus: 4, memoryMiB: 8192 });
  const db = t.database.db;
  admin = await createUserWithToken(db, { username: 'root', superAdmin: true });
  poolAdmin = await createUserWithToken(db, { username: 'rackadmin' });
  monitor = await createUserWithToken(db, { username: 'watcher' });
  stranger = await createUserWithToken(db, { username: 'stranger' });
  rack = await createPool(db, { name: 'rack-1' });
  otherRack = await createPool(db, { name: 'rack-2' });
  vmPool = await createPool(db, { name: 'team', kind: 'vm', parentId: rack });
  await grantRole(db, rack, poolAdmin.id, 'admin');
  await grantRole(db, rack, monitor.id, 'monitor');
});
afterAll(async () => {
  await t.close();
  await connections.closeAll();
  await rm(dir, { recursive: true, force: true });
});

const as = (user: { token: string }) => authHeader(user.token);

describe('adding hosts', () => {
  let alphaId: number;

  test('POST /hosts reads the inventory through libvirt', async () => {
    // A test-driver file is on herd's machine: the super-admin's (docs/host-uris.md).
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/hosts',
      headers: as(admin),
      payload: { uri: uriAlpha, poolId: rack },
    });
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(body).toMatchObject({ hostname: 'alpha', cpus: 8, memoryMiB: 16384, enabled: true, poolId: rack });
    expect(body.arch).toBe('x86_64');
    expect(body.mhz).toBe(2400);
    expect(body.nics).toEqual([{ name: 'eth0', mac: expect.any(String) }]);
    alphaId = body.id;
  });

  test('a second host, and the list filtered by what the caller may view', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/hosts',
      headers: as(admin),
      payload: { uri: uriBeta, poolId: otherRack },
    });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ hostname: 'beta', cpus: 4, memoryMiB: 8192 });

    const all = await t.app.inject({ method: 'GET', url: '/api/v1/hosts', headers: as(admin) });
    expect(all.json().total).toBe(2);
    const watched = await t.app.inject({ method: 'GET', url: '/api/v1/hosts', headers: as(monitor) });
    expect(watched.json()).toMatchObject({ total: 1, items: [{ id: alphaId, hostname: 'alpha', vms: [] }] });
    const none = await t.app.inject({ method: 'GET', url: '/api/v1/hosts', headers: as(stranger) });
    expect(none.json()).toEqual({ items: [], total: 0 });
  });

  test('refusals: unreachable URI, duplicate, VM pool, bad body, no auth', async () => {
    const missing = await t.app.inject({
      method: 'POST',
      url: '/api/v1/hosts',
      headers: as(admin),
      payload: { uri: `test://${dir}/nope.xml`, poolId: rack },
    });
    expect(missing.statusCode).toBe(400);
    expect(missing.json()).toMatchObject({ error: 'host_unreachable', field: 'uri' });
    expect(missing.json().message).toContain('nope.xml');

    const dup = await t.app.inject({
      method: 'POST',
      url: '/api/v1/hosts',
      headers: as(admin),
      payload: { uri: uriAlpha, poolId: rack },
    });
    expect(dup.statusCode).toBe(409);

    const intoVmPool = await t.app.inject({
      method: 'POST',
      url: '/api/v1/hosts',
      headers: as(admin),
      payload: { uri: uriAlpha, poolId: vmPool },
    });
    expect(intoVmPool.statusCode).toBe(400);
    expect(intoVmPool.json().field).toBe('poolId');

    const noPool = await t.app.inject({
      method: 'POST',
      url: '/api/v1/hosts',
      headers: as(admin),
      payload: { uri: uriAlpha },
    });
    expect(noPool.statusCode).toBe(400);
    expect(noPool.json().field).toBe('poolId');

    const anonymous = await t.app.inject({ method: 'GET', url: '/api/v1/hosts' });
    expect(anonymous.statusCode).toBe(401);
  });

  test('authorization: invisible pools answer 404, view-only 403', async () => {
    const intoOther = await t.app.inject({
      method: 'POST',
      url: '/api/v1/hosts',
      headers: as(poolAdmin),
      payload: { uri: `test://${dir}/whatever.xml`, poolId: otherRack },
    });
    expect(intoOther.statusCode).toBe(404);
    const byMonitor = await t.app.inject({
      method: 'POST',
      url: '/api/v1/hosts',
      headers: as(monitor),
      payload: { uri: `test://${dir}/whatever.xml`, poolId: rack },
    });
    expect(byMonitor.statusCode).toBe(403);

    expect(
      (await t.app.inject({ method: 'GET', url: `/api/v1/hosts/${alphaId}`, headers: as(stranger) }))
        .statusCode,
    ).toBe(404);
    expect(
      (await t.app.inject({ method: 'GET', url: `/api/v1/hosts/${alphaId}`, headers: as(monitor) }))
        .statusCode,
    ).toBe(200);
    const patch = await t.app.inject({
      method: 'PATCH',
      url: `/api/v1/hosts/${alphaId}`,
      headers: as(monitor),
      payload: { enabled: false },
    });
    expect(patch.statusCode).toBe(403);
    const del = await t.app.inject({
      method: 'DELETE',
      url: `/api/v1/hosts/${alphaId}`,
      headers: as(stranger),
    });
    expect(del.statusCode).toBe(404);
  });

  test('PATCH: enable/disable (announced), inventory settings, move between hardware pools', async () => {
    const seen: HostStateEvent[] = [];
    const listener = (e: HostStateEvent) => seen.push(e);
    events.on(HOST_STATE_EVENT, listener);
    const res = await t.app.inject({
      method: 'PATCH',
      url: `/api/v1/hosts/${alphaId}`,
      headers: as(poolAdmin),
      payload: {
        enabled: false,
        reservedVcpus: 2,
        reservedMemoryMiB: 2048,
        cpuAllocationRatio: 4,
        ramAllocationRatio: 1.5,
      },
    });
    events.off(HOST_STATE_EVENT, listener);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      enabled: false,
      reservedVcpus: 2,
      reservedMemoryMiB: 2048,
      cpuAllocationRatio: 4,
      ramAllocationRatio: 1.5,
    });
    expect(seen).toEqual([expect.objectContaining({ hostId: alphaId, enabled: false })]);

    const tooMuch = await t.app.inject({
      method: 'PATCH',
      url: `/api/v1/hosts/${alphaId}`,
      headers: as(poolAdmin),
      payload: { reservedVcpus: 64 },
    });
    expect(tooMuch.statusCode).toBe(400);
    expect(tooMuch.json().field).toBe('reservedVcpus');

    // The pool admin of rack-1 cannot move the host to rack-2 (invisible to them) …
    const away = await t.app.inject({
      method: 'PATCH',
      url: `/api/v1/hosts/${alphaId}`,
      headers: as(poolAdmin),
      payload: { poolId: otherRack },
    });
    expect(away.statusCode).toBe(404);
    // … the super-admin can, and back.
    for (const poolId of [otherRack, rack]) {
      const moved = await t.app.inject({
        method: 'PATCH',
        url: `/api/v1/hosts/${alphaId}`,
        headers: as(admin),
        payload: { poolId },
      });
      expect(moved.json().poolId).toBe(poolId);
    }
  });

  test('GET /hosts/:id shows live metrics from collectd and the VMs on it', async () => {
    const now = Date.now() / 1000;
    liveView.update(
      {
        host: 'alpha',
        plugin: 'load',
        pluginInstance: '',
        type: 'load',
        typeInstance: '',
        time: now,
        interval: 10,
        dsTypes: ['gauge', 'gauge', 'gauge'],
        values: [0.5, 0.4, 0.3],
      },
      ['shortterm', 'midterm', 'longterm'],
    );
    const { id: vmId } = await t.database.db
      .insertInto('vms')
      .values({
        uuid: randomUUID(),
        name: 'web',
        pool_id: vmPool,
        owner_id: poolAdmin.id,
        vcpus: 1,
        memory_mib: 512,
        host_id: alphaId,
        state: 'running',
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    const res = await t.app.inject({ method: 'GET', url: `/api/v1/hosts/${alphaId}`, headers: as(monitor) });
    const body = res.json();
    expect(body.live).toMatchObject({ load1: 0.5, load5: 0.4, load15: 0.3, interval: 10 });
    expect(body.collectd).toMatchObject({ interval: 10, silent: false });
    expect(Date.parse(body.lastSeen)).toBeGreaterThan(Date.now() - 5000);
    expect(body.vms).toEqual([{ id: vmId, name: 'web', state: 'running' }]);

    // Its VM belongs to a VM pool of rack-1: the host cannot leave rack-1 while it runs it.
    const move = await t.app.inject({
      method: 'PATCH',
      url: `/api/v1/hosts/${alphaId}`,
      headers: as(admin),
      payload: { poolId: otherRack },
    });
    expect(move.statusCode).toBe(409);
    expect(move.json().error).toBe('host_has_vms');

    const del = await t.app.inject({
      method: 'DELETE',
      url: `/api/v1/hosts/${alphaId}`,
      headers: as(poolAdmin),
    });
    expect(del.statusCode).toBe(409);
    expect(del.json().error).toBe('host_has_vms');
    await t.database.db.deleteFrom('vms').where('id', '=', vmId).execute();
    const ok = await t.app.inject({
      method: 'DELETE',
      url: `/api/v1/hosts/${alphaId}`,
      headers: as(poolAdmin),
    });
    expect(ok.statusCode).toBe(204);
    expect(
      (await t.app.inject({ method: 'GET', url: `/api/v1/hosts/${alphaId}`, headers: as(admin) })).statusCode,
    ).toBe(404);
  });
});

describe('registration from the host side', () => {
  const inventory = {
    uri: 'qemu+ssh://root@gamma.example/system',
    hostname: 'gamma',
    uuid: '4c4c4544-0038-4a10-8052-b4c04f4a4a32',
    arch: 'x86_64',
    cpus: 32,
    cores: 16,
    mhz: 2900,
    memoryMiB: 257_000,
    nics: [{ name: 'eno1', mac: '3c:ec:ef:00:00:01' }],
  };

  test('a new host lands disabled in the default hardware pool; a second call refreshes it', async () => {
    const first = await t.app.inject({
      method: 'POST',
      url: '/api/v1/hosts/register',
      headers: as(admin),
      payload: inventory,
    });
    expect(first.statusCode).toBe(201);
    expect(first.json()).toMatchObject({ created: true, enabled: false, poolId: 1 });
    const id = first.json().id;

    const again = await t.app.inject({
      method: 'POST',
      url: '/api/v1/hosts/register',
      headers: as(admin),
      payload: { ...inventory, memoryMiB: 256_000 },
    });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ id, created: false, enabled: false });

    const host = (
      await t.app.inject({ method: 'GET', url: `/api/v1/hosts/${id}`, headers: as(admin) })
    ).json();
    expect(host).toMatchObject({
      hostname: 'gamma',
      uuid: inventory.uuid,
      cpus: 32,
      cores: 16,
      memoryMiB: 256_000,
      enabled: false,
      poolId: 1,
      state: 'unknown',
      nics: inventory.nics,
    });
  });

  test('needs a token allowed to change the default pool; bad bodies name the field', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/hosts/register',
      headers: as(poolAdmin),
      payload: { ...inventory, uri: 'qemu+tcp://delta/system' },
    });
    expect(res.statusCode).toBe(404);
    const anonymous = await t.app.inject({
      method: 'POST',
      url: '/api/v1/hosts/register',
      payload: inventory,
    });
    expect(anonymous.statusCode).toBe(401);
    const bad = await t.app.inject({
      method: 'POST',
      url: '/api/v1/hosts/register',
      headers: as(admin),
      payload: { ...inventory, cpus: 'many' },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().field).toBe('cpus');
  });
});

test('the OpenAPI document describes hosts, storage, images and PXE', async () => {
  const doc = (await t.app.inject({ method: 'GET', url: '/api/docs/json' })).json();
  for (const p of [
    '/api/v1/hosts',
    '/api/v1/hosts/{id}',
    '/api/v1/hosts/register',
    '/api/v1/hosts/{id}/evacuate',
    '/api/v1/storage-pools',
    '/api/v1/storage-pools/{id}/volumes',
    '/api/v1/images',
    '/pxe/boot',
  ]) {
    expect(doc.paths[p], p).toBeDefined();
  }
});
