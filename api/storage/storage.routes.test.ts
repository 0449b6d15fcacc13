import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createLogger } from '../../lib/log.js';
import { createTestApp, type TestApp } from '../../lib/testing/app.js';
import { writeTestHost } from '../../lib/testing/libvirt-hosts.js';
import { authHeader, createPool, createUserWithToken, grantRole } from '../../lib/testing/users.js';
import { HostConnections } from '../hosts/driver/index.js';

let t: TestApp;
let dir: string;
const connections = new HostConnections(createLogger('silent'));
let admin: { id: number; token: string };
let rackAdmin: { id: number; token: string };
let watcher: { id: number; token: string };
let stranger: { id: number; token: string };
let rack: number;
let emptyRack: number;
let hostA: number;
let hostB: number;
let uriB: string;

async function api(method: 'GET' | 'POST' | 'DELETE', url: string, who: { token: string }, payload?: object) {
  return t.app.inject({ method, url, headers: authHeader(who.token), payload });
}

beforeAll(async () => {
  t = await createTestApp({ deps: { hostConnections: connections } });
  dir = await mkdtemp(path.join(tmpdir(), 'herd-storage-'));
  const db = t.database.db;
  admin = await createUserWithToken(db, { username: 'root', superAdmin: true });
  rackAdmin = await createUserWithToken(db, { username: 'rackadmin' });
  watcher = await createUserWithToken(db, { username: 'watcher' });
  stranger = await createUserWithToken(db, { username: 'stranger' });
  rack = await createPool(db, { name: 'rack' });
  emptyRack = await createPool(db, { name: 'empty' });
  await grantRole(db, rack, rackAdmin.id, 'admin');
  await grantRole(db, rack, watcher.id, 'monitor');
  const uriA = await writeTestHost(dir, {
    name: 'store-a',
    cpus: 4,
    memoryMiB: 8192,
    pools: [
      {
        name: 'local',
        volumes: [
          { name: 'root.img', sizeGiB: 20 },
          { name: 'data.img', sizeGiB: 100 },
        ],
      },
      { name: 'isos', volumes: [{ name: 'debian.iso', sizeGiB: 0.5 }] },
    ],
  });
  uriB = await writeTestHost(dir, {
    name: 'store-b',
    cpus: 4,
    memoryMiB: 8192,
    pools: [{ name: 'shared', volumes: [{ name: 'lun0', sizeGiB: 50 }] }],
  });
  for (const [uri, set] of [
    [uriA, (id: number) => (hostA = id)],
    [uriB, (id: number) => (hostB = id)],
  ] as const) {
    const res = await api('POST', '/api/v1/hosts', admin, { uri, poolId: rack });
    expect(res.statusCode, res.body).toBe(201);
    set(res.json().id);
  }
});
afterAll(async () => {
  await t.close();
  await connections.closeAll();
  await rm(dir, { recursive: true, force: true });
});

describe('libvirt pools', () => {
  let local: number;

  test('adopting a libvirt pool finds the host that has it and records its volumes', async () => {
    const res = await api('POST', '/api/v1/storage-pools', rackAdmin, {
      poolId: rack,
      type: 'libvirt',
      name: 'shared',
    });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({
      hostId: hostB,
      type: 'libvirt',
      libvirtType: 'dir',
      volumes: 1,
      sizeGiB: 50,
    });
    const volumes = await api('GET', `/api/v1/storage-pools/${res.json().id}/volumes`, watcher);
    expect(volumes.json()).toEqual({
      total: 1,
      items: [
        {
          id: expect.any(Number),
          name: 'lun0',
          path: path.join(dir, 'store-b', 'shared', 'lun0'),
          sizeGiB: 50,
          vmId: null,
        },
      ],
    });
  });

  test('on a named host', async () => {
    const res = await api('POST', '/api/v1/storage-pools', rackAdmin, {
      poolId: rack,
      type: 'libvirt',
      name: 'local',
      hostId: hostA,
    });
    expect(res.statusCode).toBe(201);
    local = res.json().id;
    const volumes = (await api('GET', `/api/v1/storage-pools/${local}/volumes`, rackAdmin)).json();
    expect(volumes.items.map((v: { name: string; sizeGiB: number }) => [v.name, v.sizeGiB])).toEqual([
      ['data.img', 100],
      ['root.img', 20],
    ]);
  });

  test('refusals: unknown libvirt pool, duplicate, wrong host, VM pool, missing fields', async () => {
    const unknown = await api('POST', '/api/v1/storage-pools', rackAdmin, {
      poolId: rack,
      type: 'libvirt',
      name: 'nope',
    });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().message).toMatch(/store-a: no libvirt storage pool named nope/);
    const dup = await api('POST', '/api/v1/storage-pools', rackAdmin, {
      poolId: rack,
      type: 'libvirt',
      name: 'local',
    });
    expect(dup.statusCode).toBe(409);
    const noHosts = await api('POST', '/api/v1/storage-pools', admin, {
      poolId: emptyRack,
      type: 'libvirt',
      name: 'x',
    });
    expect(noHosts.statusCode).toBe(400);
    expect(noHosts.json().field).toBe('poolId');
    const elsewhere = await api('POST', '/api/v1/storage-pools', admin, {
      poolId: emptyRack,
      type: 'libvirt',
      name: 'isos',
      hostId: hostA,
    });
    expect(elsewhere.statusCode).toBe(400);
    expect(elsewhere.json().field).toBe('hostId');
    const iscsiWithoutTarget = await api('POST', '/api/v1/storage-pools', admin, {
      poolId: rack,
      type: 'iscsi',
      name: 'san',
      portal: '10.0.0.5',
    });
    expect(iscsiWithoutTarget.statusCode).toBe(400);
    expect(iscsiWithoutTarget.json().field).toBe('targetIqn');
    const badName = await api('POST', '/api/v1/storage-pools', admin, {
      poolId: rack,
      type: 'libvirt',
      name: '-rf /',
    });
    expect(badName.statusCode).toBe(400);
    expect(badName.json().field).toBe('name');
  });

  test('volumes: create, refuse duplicates, refuse deleting attached ones, delete', async () => {
    const created = await api('POST', `/api/v1/storage-pools/${local}/volumes`, rackAdmin, {
      name: 'scratch.img',
      sizeGiB: 8,
    });
    expect(created.statusCode, created.body).toBe(201);
    expect(created.json()).toMatchObject({ name: 'scratch.img', sizeGiB: 8, vmId: null });
    const dup = await api('POST', `/api/v1/storage-pools/${local}/volumes`, rackAdmin, {
      name: 'scratch.img',
      sizeGiB: 1,
    });
    expect(dup.statusCode).toBe(409);
    // The host itself has it.
    const driver = await connections.get(
      (
        await t.database.db
          .selectFrom('hosts')
          .select('uri')
          .where('id', '=', hostA)
          .executeTakeFirstOrThrow()
      ).uri,
    );
    expect((await driver.listVolumes('local')).map((v) => v.name)).toContain('scratch.img');

    // A VM holds data.img: it cannot be deleted.
    const vmPool = await createPool(t.database.db, { name: 'vms', kind: 'vm', parentId: rack });
    const { id: vmId } = await t.database.db
      .insertInto('vms')
      .values({
        uuid: randomUUID(),
        name: 'db',
        pool_id: vmPool,
        owner_id: admin.id,
        vcpus: 1,
        memory_mib: 512,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    const volumes = (await api('GET', `/api/v1/storage-pools/${local}/volumes`, rackAdmin)).json()
      .items as Array<{
      id: number;
      name: string;
    }>;
    const data = volumes.find((v) => v.name === 'data.img')!;
    await t.database.db.updateTable('volumes').set({ vm_id: vmId }).where('id', '=', data.id).execute();
    const attached = await api('DELETE', `/api/v1/storage-pools/${local}/volumes/${data.id}`, rackAdmin);
    expect(attached.statusCode).toBe(409);
    expect(attached.json().error).toBe('volume_attached');
    const list = (await api('GET', `/api/v1/storage-pools/${local}/volumes`, rackAdmin)).json();
    expect(list.items.find((v: { id: number }) => v.id === data.id).vmId).toBe(vmId);

    const scratch = created.json().id;
    expect(
      (await api('DELETE', `/api/v1/storage-pools/${local}/volumes/${scratch}`, rackAdmin)).statusCode,
    ).toBe(204);
    expect((await driver.listVolumes('local')).map((v) => v.name)).not.toContain('scratch.img');
    expect(
      (await api('DELETE', `/api/v1/storage-pools/${local}/volumes/${scratch}`, rackAdmin)).statusCode,
    ).toBe(404);
    // Forgetting the storage pool waits until no VM holds a volume of it.
    expect((await api('DELETE', `/api/v1/storage-pools/${local}`, rackAdmin)).statusCode).toBe(409);
  });

  test('refresh picks up volumes made outside herd and forgets vanished ones', async () => {
    const driver = await connections.get(uriB);
    const shared = (await api('GET', '/api/v1/storage-pools', admin))
      .json()
      .items.find((p: { name: string }) => p.name === 'shared');
    await driver.createVolume('shared', 'lun1', 25);
    await driver.deleteVolume('shared', 'lun0');
    const res = await api('POST', `/api/v1/storage-pools/${shared.id}/refresh`, rackAdmin);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ added: 1, updated: 0, removed: 1, missing: [] });
    const names = (await api('GET', `/api/v1/storage-pools/${shared.id}/volumes`, rackAdmin))
      .json()
      .items.map((v: { name: string }) => v.name);
    expect(names).toEqual(['lun1']);
  });

  test('authorization: invisible 404, view-only 403', async () => {
    const pools = await api('GET', '/api/v1/storage-pools', stranger);
    expect(pools.json()).toEqual({ items: [], total: 0 });
    const seen = (await api('GET', '/api/v1/storage-pools', watcher)).json();
    expect(seen.total).toBe(2);
    expect((await api('GET', `/api/v1/storage-pools/${local}/volumes`, stranger)).statusCode).toBe(404);
    expect(
      (await api('POST', `/api/v1/storage-pools/${local}/volumes`, watcher, { name: 'x', sizeGiB: 1 }))
        .statusCode,
    ).toBe(403);
    expect(
      (await api('POST', '/api/v1/storage-pools', watcher, { poolId: rack, type: 'libvirt', name: 'isos' }))
        .statusCode,
    ).toBe(403);
    expect(
      (await api('POST', '/api/v1/storage-pools', stranger, { poolId: rack, type: 'libvirt', name: 'isos' }))
        .statusCode,
    ).toBe(404);
  });
});

describe('pools herd defines', () => {
  test('NFS, LVM and iSCSI pools are defined on a host of the hardware pool', async () => {
    const nfs = await api('POST', '/api/v1/storage-pools', rackAdmin, {
      poolId: rack,
      type: 'nfs',
      name: 'nfs-vms',
      server: 'filer.example',
      export: '/export/vms',
      hostId: hostB,
    });
    expect(nfs.statusCode).toBe(201);
    expect(nfs.json()).toMatchObject({
      hostId: hostB,
      type: 'nfs',
      libvirtType: 'netfs',
      supportsVolumeCreation: true,
      params: { server: 'filer.example', export: '/export/vms' },
    });
    const lvm = await api('POST', '/api/v1/storage-pools', rackAdmin, {
      poolId: rack,
      type: 'lvm',
      name: 'vg-fast',
      volumeGroup: 'fast',
      hostId: hostB,
    });
    expect(lvm.statusCode).toBe(201);
    const lv = await api('POST', `/api/v1/storage-pools/${lvm.json().id}/volumes`, rackAdmin, {
      name: 'lv-1',
      sizeGiB: 4,
    });
    expect(lv.statusCode).toBe(201);

    const iscsi = await api('POST', '/api/v1/storage-pools', rackAdmin, {
      poolId: rack,
      type: 'iscsi',
      name: 'san',
      portal: '10.0.0.5',
      port: 3260,
      targetIqn: 'iqn.2003-01.org.example:vms',
      hostId: hostB,
    });
    expect(iscsi.statusCode).toBe(201);
    expect(iscsi.json()).toMatchObject({
      libvirtType: 'iscsi-direct',
      supportsVolumeCreation: false,
      volumes: 0,
    });
    const lun = await api('POST', `/api/v1/storage-pools/${iscsi.json().id}/volumes`, rackAdmin, {
      name: 'x',
      sizeGiB: 1,
    });
    expect(lun.statusCode).toBe(409);
    expect(lun.json().error).toBe('not_supported');

    const driver = await connections.get(uriB);
    const defined = Object.fromEntries((await driver.listStoragePools()).map((p) => [p.name, p.type]));
    expect(defined).toMatchObject({ 'nfs-vms': 'netfs', 'vg-fast': 'logical', san: 'iscsi-direct' });

    // Defining a name libvirt already has is refused, pointing at adoption.
    await driver.defineStoragePool({ type: 'lvm', name: 'made-by-hand', volumeGroup: 'slow' });
    const again = await api('POST', '/api/v1/storage-pools', rackAdmin, {
      poolId: rack,
      type: 'lvm',
      name: 'made-by-hand',
      volumeGroup: 'slow',
      hostId: hostB,
    });
    expect(again.statusCode, again.body).toBe(409);
    expect(again.json().message).toMatch(/adopt it with type "libvirt"/);
  });
});
