import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createLogger } from '../../../lib/log.js';
import { testUuid, writeTestHost } from '../../../lib/testing/libvirt-hosts.js';
import { HostConnections, UnsupportedByDriverError } from './index.js';

/**
 * Hosts of libvirt's test driver (`test:///<file>.xml`), as herd opens them: through HostConnections, over herd's
 * RPC client, served by the suite's test-driver libvirtd (HERD_LIBVIRT_TEST_SOCKET).
 */
const log = createLogger('silent');
let dir: string;
let connections: HostConnections;
let uriA: string;
let uriB: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'herd-driver-'));
  connections = new HostConnections(log);
  uriA = await writeTestHost(dir, {
    name: 'alpha',
    cpus: 8,
    memoryMiB: 16384,
    domains: [
      { name: 'web', vcpus: 2, memoryMiB: 1024 },
      { name: 'idle', state: 'shutoff' },
      { name: 'held', state: 'paused' },
    ],
  });
  uriB = await writeTestHost(dir, { name: 'beta', cpus: 4, memoryMiB: 8192 });
});
afterAll(async () => {
  await connections.closeAll();
  await rm(dir, { recursive: true, force: true });
});

describe('inventory', () => {
  test('reads each fake host on its own', async () => {
    const a = await (await connections.get(uriA)).inventory();
    expect(a).toMatchObject({
      hostname: 'alpha',
      arch: 'x86_64',
      cpus: 8,
      cores: 8,
      mhz: 2400,
      memoryMiB: 16384,
    });
    expect(a.nics).toEqual([{ name: 'eth0', mac: expect.stringMatching(/^52:54:00:/) }]);
    const b = await (await connections.get(uriB)).inventory();
    expect(b).toMatchObject({ hostname: 'beta', cpus: 4, memoryMiB: 8192 });
  });

  test('one connection per URI', async () => {
    expect(await connections.get(uriA)).toBe(await connections.get(uriA));
  });

  test('a bad URI fails clearly and is not cached', async () => {
    const bad = `test://${path.join(dir, 'missing.xml')}`;
    await expect(connections.get(bad)).rejects.toThrow(/cannot connect to test:.*missing\.xml/);
    expect(connections.has(bad)).toBe(false);
  });
});

describe('domains', () => {
  test('lists domains with mapped states', async () => {
    const driver = await connections.get(uriA);
    const domains = await driver.listDomains();
    const byName = Object.fromEntries(domains.map((d) => [d.name, d]));
    expect(byName.web).toEqual({
      uuid: testUuid('alpha/web'),
      name: 'web',
      state: 'running',
      vcpus: 2,
      memoryMiB: 1024,
    });
    expect(byName.idle.state).toBe('shutoff');
    expect(byName.held.state).toBe('paused');
    expect(await driver.domain('00000000-0000-4000-8000-000000000000')).toBeNull();
  });

  test('define, start, suspend, resume, save, restore, shutdown, destroy, undefine', async () => {
    const driver = await connections.get(uriB);
    const uuid = testUuid('beta/new');
    await driver.define({
      uuid,
      name: 'new',
      vcpus: 2,
      memoryMiB: 2048,
      disks: [
        { path: path.join(dir, 'beta', 'default', 'disk1.img') },
        { path: '/srv/iso/x.iso', device: 'cdrom' },
      ],
      nics: [{ mac: '52:54:00:aa:bb:cc', network: 'default' }],
      boot: ['network', 'hd'],
    });
    expect(await driver.domain(uuid)).toMatchObject({
      name: 'new',
      state: 'shutoff',
      vcpus: 2,
      memoryMiB: 2048,
    });
    const xml = await driver.domainXml(uuid);
    expect(xml).toContain("<boot dev='network'/>");
    expect(xml).toContain("<mac address='52:54:00:aa:bb:cc'/>");
    expect(xml).toContain('<on_crash>preserve</on_crash>');

    await driver.start(uuid);
    expect((await driver.domain(uuid))?.state).toBe('running');
    await driver.suspend(uuid);
    expect((await driver.domain(uuid))?.state).toBe('paused');
    await driver.resume(uuid);
    expect((await driver.domain(uuid))?.state).toBe('running');

    const file = path.join(dir, 'new.save');
    await driver.save(uuid, file);
    expect((await driver.domain(uuid))?.state).toBe('shutoff');
    await driver.restore(file);
    expect((await driver.domain(uuid))?.state).toBe('running');

    await driver.shutdown(uuid);
    expect((await driver.domain(uuid))?.state).toBe('shutoff');
    await driver.start(uuid);
    await driver.destroy(uuid);
    expect((await driver.domain(uuid))?.state).toBe('shutoff');
    await driver.undefine(uuid);
    expect(await driver.domain(uuid)).toBeNull();
    await expect(driver.start(uuid)).rejects.toThrow(/not found/);
  });

  test('live migration on the test driver is refused clearly', async () => {
    const driver = await connections.get(uriA);
    const err = await driver.migrateLive(testUuid('alpha/web'), uriB).catch((e) => e);
    expect(err).toBeInstanceOf(UnsupportedByDriverError);
    expect(err.message).toBe("live migration not supported by this host's driver (test); use cold migration");
  });
});

describe('storage', () => {
  test('pools and volumes live in the same fake host as the domains', async () => {
    const driver = await connections.get(uriA);
    expect(await driver.listStoragePools()).toEqual([
      { name: 'default', type: 'dir', capacityGiB: 100, availableGiB: 100, active: true },
    ]);
    const volumes = await driver.listVolumes('default');
    expect(volumes).toEqual([
      { name: 'disk1.img', path: path.join(dir, 'alpha', 'default', 'disk1.img'), sizeGiB: 10 },
      { name: 'disk2.img', path: path.join(dir, 'alpha', 'default', 'disk2.img'), sizeGiB: 20 },
    ]);
    const created = await driver.createVolume('default', 'fresh.img', 1.5);
    expect(created).toMatchObject({ name: 'fresh.img', sizeGiB: 1.5 });
    expect((await driver.listVolumes('default')).map((v) => v.name)).toContain('fresh.img');
    await driver.deleteVolume('default', 'fresh.img');
    expect((await driver.listVolumes('default')).map((v) => v.name)).not.toContain('fresh.img');
    // The other host never saw any of it.
    expect((await (await connections.get(uriB)).listVolumes('default')).map((v) => v.name)).toEqual([
      'disk1.img',
      'disk2.img',
    ]);
  });

  test('defines NFS, LVM and iSCSI pools', async () => {
    const driver = await connections.get(uriB);
    await driver.defineStoragePool({ type: 'nfs', name: 'nfs1', server: '10.0.0.1', export: '/export/vms' });
    await driver.defineStoragePool({ type: 'lvm', name: 'vg', volumeGroup: 'vg0' });
    await driver.defineStoragePool({
      type: 'iscsi',
      name: 'san',
      portal: '10.0.0.2',
      port: 3260,
      targetIqn: 'iqn.2020-01.com.example:t1',
    });
    const pools = await driver.listStoragePools();
    expect(pools.map((p) => [p.name, p.type, p.active])).toEqual(
      expect.arrayContaining([
        ['nfs1', 'netfs', true],
        ['vg', 'logical', true],
        ['san', 'iscsi', true],
      ]),
    );
    await driver.refreshStoragePool('san');
    expect(await driver.listVolumes('san')).toEqual([]);
  });

  test("storage errors carry libvirt's messages", async () => {
    const driver = await connections.get(uriA);
    await expect(driver.listVolumes('nope')).rejects.toThrow(/nope/);
    // …and the connection keeps working afterwards.
    expect((await driver.listVolumes('default')).length).toBe(2);
  });
});
