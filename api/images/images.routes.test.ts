import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestApp, type TestApp } from '../../lib/testing/app.js';
import { authHeader, createPool, createUserWithToken, grantRole } from '../../lib/testing/users.js';
import { PXE_MISSES_PER_ADDRESS_PER_MINUTE } from './images.routes.js';
import { normalizeMac } from './images.service.js';

let t: TestApp;
let admin: { id: number; token: string };
let rackAdmin: { id: number; token: string };
let owner: { id: number; token: string };
let other: { id: number; token: string };
let vmPool: number;

async function api(method: 'GET' | 'POST' | 'DELETE', url: string, who: { token: string }, payload?: object) {
  return t.app.inject({ method, url, headers: authHeader(who.token), payload });
}

async function insertVm(
  name: string,
  mac: string,
  imageId: number | null,
  bootNetwork: boolean,
  state: 'defined' | 'starting' | 'running' = 'starting',
): Promise<number> {
  const { id } = await t.database.db
    .insertInto('vms')
    .values({
      uuid: randomUUID(),
      name,
      pool_id: vmPool,
      owner_id: owner.id,
      vcpus: 1,
      memory_mib: 512,
      image_id: imageId,
      boot_network: bootNetwork,
      state,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  await t.database.db.insertInto('vm_nics').values({ vm_id: id, mac }).execute();
  return id;
}

const PXE_BASE = 'http://10.0.2.2:18080';

beforeAll(async () => {
  t = await createTestApp({ env: { HERD_PXE_BASE_URL: `${PXE_BASE}/` } });
  const db = t.database.db;
  admin = await createUserWithToken(db, { username: 'root', superAdmin: true });
  rackAdmin = await createUserWithToken(db, { username: 'rackadmin' });
  owner = await createUserWithToken(db, { username: 'owner' });
  other = await createUserWithToken(db, { username: 'other' });
  const rack = await createPool(db, { name: 'rack' });
  vmPool = await createPool(db, { name: 'team', kind: 'vm', parentId: rack });
  await grantRole(db, rack, rackAdmin.id, 'admin');
  await grantRole(db, vmPool, owner.id, 'user');
  await grantRole(db, vmPool, other.id, 'user');
});
afterAll(() => t.close());

describe('the catalogue', () => {
  test('kernel, iPXE and ISO images', async () => {
    const kernel = await api('POST', '/api/v1/images', rackAdmin, {
      name: 'debian-12',
      kernel: 'http://boot.example/debian/linux',
      initrd: 'http://boot.example/debian/initrd.gz',
      cmdline: 'auto=true priority=critical hostname={{name}} url=http://boot.example/preseed/{{uuid}}',
    });
    expect(kernel.statusCode).toBe(201);
    expect(kernel.json()).toMatchObject({
      name: 'debian-12',
      kind: 'kernel',
      ipxeUrl: null,
      createdBy: rackAdmin.id,
    });
    const ipxe = await api('POST', '/api/v1/images', admin, {
      name: 'netboot.xyz',
      ipxeUrl: 'https://boot.netboot.xyz/menu.ipxe',
    });
    expect(ipxe.json().kind).toBe('ipxe');

    const storagePool = await t.database.db
      .insertInto('storage_pools')
      .values({ pool_id: 1, type: 'libvirt', name: 'isos' })
      .returning('id')
      .executeTakeFirstOrThrow();
    const volume = await t.database.db
      .insertInto('volumes')
      .values({
        storage_pool_id: storagePool.id,
        name: 'alpine.iso',
        path: '/isos/alpine.iso',
        size_gib: 0.2,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    const iso = await api('POST', '/api/v1/images', admin, { name: 'alpine', isoVolumeId: volume.id });
    expect(iso.json()).toMatchObject({ kind: 'iso', isoVolumeId: volume.id });
    // The rack admin cannot see the default pool's volumes.
    const hidden = await api('POST', '/api/v1/images', rackAdmin, {
      name: 'alpine-2',
      isoVolumeId: volume.id,
    });
    expect(hidden.statusCode).toBe(404);

    const list = await api('GET', '/api/v1/images', owner);
    expect(list.json().items.map((i: { name: string }) => i.name)).toEqual([
      'alpine',
      'debian-12',
      'netboot.xyz',
    ]);
  });

  test('refusals: two kinds at once, none, newlines, duplicates, plain users', async () => {
    const both = await api('POST', '/api/v1/images', admin, {
      name: 'x',
      kernel: 'http://a/k',
      ipxeUrl: 'http://a/s',
    });
    expect(both.statusCode).toBe(400);
    const none = await api('POST', '/api/v1/images', admin, { name: 'x' });
    expect(none.statusCode).toBe(400);
    const injected = await api('POST', '/api/v1/images', admin, {
      name: 'x',
      kernel: 'http://a/k',
      cmdline: 'a\nshell',
    });
    expect(injected.statusCode).toBe(400);
    expect(injected.json().field).toBe('cmdline');
    const badUrl = await api('POST', '/api/v1/images', admin, { name: 'x', ipxeUrl: 'file:///etc/passwd' });
    expect(badUrl.statusCode).toBe(400);
    const dup = await api('POST', '/api/v1/images', admin, { name: 'debian-12', ipxeUrl: 'http://a/s' });
    expect(dup.statusCode).toBe(409);
    const byUser = await api('POST', '/api/v1/images', owner, { name: 'mine', ipxeUrl: 'http://a/s' });
    expect(byUser.statusCode).toBe(403);
    const anonymous = await t.app.inject({ method: 'GET', url: '/api/v1/images' });
    expect(anonymous.statusCode).toBe(401);
  });
});

describe('PXE boot', () => {
  let images: Record<string, number>;
  const pxe = (mac: string) =>
    t.app.inject({ method: 'GET', url: `/pxe/boot?mac=${encodeURIComponent(mac)}` });

  beforeAll(async () => {
    const list = (await api('GET', '/api/v1/images', admin)).json().items as Array<{
      id: number;
      name: string;
    }>;
    images = Object.fromEntries(list.map((i) => [i.name, i.id]));
  });

  test('a VM being installed gets its kernel, initrd and command line, without authentication', async () => {
    const vmId = await insertVm('web-1', '52:54:00:12:34:56', images['debian-12'], true);
    const uuid = (
      await t.database.db.selectFrom('vms').select('uuid').where('id', '=', vmId).executeTakeFirstOrThrow()
    ).uuid;
    const res = await pxe('52-54-00-12-34-56');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/plain');
    expect(res.body).toBe(
      [
        '#!ipxe',
        'echo herd: installing web-1 from debian-12',
        `kernel http://boot.example/debian/linux auto=true priority=critical hostname=web-1 url=http://boot.example/preseed/${uuid}`,
        'initrd http://boot.example/debian/initrd.gz',
        'boot',
        '',
      ].join('\n'),
    );

    // Installed: from now on it boots from its disk. Only those who may control the VM can say so.
    expect((await api('POST', `/api/v1/vms/${vmId}/installed`, other)).statusCode).toBe(404);
    const done = await api('POST', `/api/v1/vms/${vmId}/installed`, owner);
    expect(done.json()).toEqual({ id: vmId, bootNetwork: false });
    expect((await pxe('52:54:00:12:34:56')).body).toBe('#!ipxe\nexit\n');
  });

  test('an iPXE image is chained; an ISO image and a VM without image boot on', async () => {
    await insertVm('menu', '52:54:00:00:00:0a', images['netboot.xyz'], true);
    expect((await pxe('52:54:00:00:00:0A')).body).toBe(
      '#!ipxe\necho herd: installing menu from netboot.xyz\nchain https://boot.netboot.xyz/menu.ipxe\n',
    );
    await insertVm('cd', '52:54:00:00:00:0b', images.alpine, true);
    expect((await pxe('52540000000b')).body).toBe('#!ipxe\necho herd: installing cd from alpine\nexit\n');
    await insertVm('plain', '52:54:00:00:00:0c', null, true);
    expect((await pxe('52:54:00:00:00:0c')).body).toBe('#!ipxe\nexit\n');
  });

  test('a VM not starting or running is unknown to PXE: its command line is not given to whoever has its MAC', async () => {
    const vmId = await insertVm('later', '52:54:00:00:00:0d', images['debian-12'], true, 'defined');
    const defined = await pxe('52:54:00:00:00:0d');
    expect(defined.statusCode).toBe(404);
    expect(defined.body).not.toContain('preseed');
    expect(defined.body).not.toContain('later');
    await t.database.db.updateTable('vms').set({ state: 'running' }).where('id', '=', vmId).execute();
    expect((await pxe('52:54:00:00:00:0d')).body).toContain('hostname=later');
  });

  test('unknown MACs answer 404, malformed ones 400; past the limit, misses from one address answer 429', async () => {
    expect((await pxe('52:54:00:ff:ff:ff')).statusCode).toBe(404);
    const bad = await pxe('not-a-mac');
    expect(bad.statusCode).toBe(400);
    expect((await t.app.inject({ method: 'GET', url: '/pxe/boot' })).statusCode).toBe(400);

    await insertVm('booting', '52:54:00:00:00:0e', images['debian-12'], true);
    const guess = (remoteAddress: string, mac: string) =>
      t.app.inject({ method: 'GET', url: `/pxe/boot?mac=${mac}`, remoteAddress });
    const random = () => `52:54:00:${randomBytes(3).toString('hex').match(/../g)!.join(':')}`;
    const statuses: number[] = [];
    for (let i = 0; i < PXE_MISSES_PER_ADDRESS_PER_MINUTE + 10; i++)
      statuses.push((await guess('192.0.2.66', random())).statusCode);
    expect(statuses.slice(0, PXE_MISSES_PER_ADDRESS_PER_MINUTE).every((s) => s === 404 || s === 200)).toBe(
      true,
    );
    expect(statuses.slice(PXE_MISSES_PER_ADDRESS_PER_MINUTE)).toEqual(new Array(10).fill(429));
    // Even a MAC that would be answered, from that address; another address is not held up.
    const held = await guess('192.0.2.66', '52:54:00:00:00:0e');
    expect(held.statusCode).toBe(429);
    expect(Number(held.headers['retry-after'])).toBeGreaterThan(0);
    expect((await guess('192.0.2.67', '52:54:00:00:00:0e')).body).toContain('hostname=booting');
    expect(normalizeMac('AA:BB:CC:DD:EE:FF')).toBe('aa:bb:cc:dd:ee:ff');
    expect(normalizeMac('aabb.ccdd.eeff')).toBeNull();
  });
});

describe('install kernels and initrds served by herd', () => {
  let dir: string;
  let kernel: string;
  let initrd: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'herd-images-'));
    kernel = path.join(dir, 'vmlinuz');
    initrd = path.join(dir, 'initrd.gz');
    await writeFile(kernel, Buffer.from(`kernel ${randomUUID()}`));
    await writeFile(initrd, Buffer.alloc(300_000, 7));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  test('a file on herd’s machine: the super-admin’s only, and it must exist', async () => {
    const byRackAdmin = await api('POST', '/api/v1/images', rackAdmin, { name: 'local', kernel });
    expect(byRackAdmin.statusCode).toBe(403);
    expect(byRackAdmin.json().message).toContain('super-admin');
    const missing = await api('POST', '/api/v1/images', admin, {
      name: 'local',
      kernel,
      initrd: `${dir}/nope`,
    });
    expect(missing.statusCode).toBe(400);
    expect(missing.json().field).toBe('initrd');
    const dotted = await api('POST', '/api/v1/images', admin, {
      name: 'local',
      kernel: `${dir}/../x/vmlinuz`,
    });
    expect(dotted.statusCode).toBe(400);
    const relative = await api('POST', '/api/v1/images', admin, { name: 'local', kernel: 'vmlinuz' });
    expect(relative.statusCode).toBe(400);
    const aDirectory = await api('POST', '/api/v1/images', admin, { name: 'local', kernel: dir });
    expect(aDirectory.statusCode).toBe(400);
  });

  test('the script points at herd’s copies and the VM’s own installed URL, which works once', async () => {
    const created = await api('POST', '/api/v1/images', admin, {
      name: 'busybox-local',
      kernel,
      initrd,
      cmdline: 'console=ttyS0 herd.installed={{installedUrl}}',
    });
    expect(created.statusCode).toBe(201);
    const id = created.json().id;
    const vmId = await insertVm('netinst', '52:54:00:00:01:01', id, true);

    const script = (await t.app.inject({ method: 'GET', url: '/pxe/boot?mac=52:54:00:00:01:01' })).body;
    const lines = script.split('\n');
    const installed = /herd\.installed=(\S+)/.exec(lines[2])?.[1] ?? '';
    expect(lines[2]).toBe(
      `kernel ${PXE_BASE}/pxe/images/${id}/kernel console=ttyS0 herd.installed=${installed}`,
    );
    expect(lines[3]).toBe(`initrd ${PXE_BASE}/pxe/images/${id}/initrd`);
    expect(installed).toMatch(new RegExp(`^${PXE_BASE}/pxe/installed/[A-Za-z0-9_-]{22}$`));
    // The same token every time the script is served, until it is used.
    const again = (await t.app.inject({ method: 'GET', url: '/pxe/boot?mac=52:54:00:00:01:01' })).body;
    expect(again).toBe(script);

    // The files, streamed without authentication; URL images and unknown ids have none.
    const k = await t.app.inject({ method: 'GET', url: `/pxe/images/${id}/kernel` });
    expect(k.statusCode).toBe(200);
    expect(k.body).toMatch(/^kernel /);
    const i = await t.app.inject({ method: 'GET', url: `/pxe/images/${id}/initrd` });
    expect(i.rawPayload).toEqual(Buffer.alloc(300_000, 7));
    expect(i.headers['content-length']).toBe('300000');
    const listed = (await api('GET', '/api/v1/images', admin)).json().items as Array<{
      id: number;
      name: string;
    }>;
    const urlImage = listed.find((x) => x.name === 'debian-12')!.id;
    expect((await t.app.inject({ method: 'GET', url: `/pxe/images/${urlImage}/kernel` })).statusCode).toBe(
      404,
    );
    expect((await t.app.inject({ method: 'GET', url: '/pxe/images/999999/initrd' })).statusCode).toBe(404);
    expect((await t.app.inject({ method: 'GET', url: '/pxe/images/abc/initrd' })).statusCode).toBe(400);

    // The guest reports back the way busybox wget does: an empty form post.
    const url = installed.slice(PXE_BASE.length);
    expect((await t.app.inject({ method: 'POST', url: '/pxe/installed/not-the-token' })).statusCode).toBe(
      404,
    );
    const done = await t.app.inject({
      method: 'POST',
      url,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: '',
    });
    expect(done.statusCode, done.body).toBe(200);
    expect(done.json()).toEqual({ id: vmId, bootNetwork: false });
    expect((await t.app.inject({ method: 'POST', url })).statusCode).toBe(404);
    expect((await t.app.inject({ method: 'GET', url: '/pxe/boot?mac=52:54:00:00:01:01' })).body).toBe(
      '#!ipxe\nexit\n',
    );
    const audit = await api('GET', `/api/v1/audit?entityType=vm&entityId=${vmId}&action=vm.installed`, admin);
    expect(audit.json().items).toMatchObject([{ userId: null, after: { bootNetwork: false, via: 'pxe' } }]);
  });
});
