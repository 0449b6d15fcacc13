import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { freePort } from '../../lib/embedded-postgres.js';
import { HOST_FROM_GUEST, sharedHypervisor } from '../../lib/testing/hypervisor.js';
import { createPool, createUserWithToken, grantRole } from '../../lib/testing/users.js';
import { waitFor } from '../../lib/testing/wait.js';
import { act, addRealHost, createVm, removeDomain } from '../vms/testing/real-host.js';
import { createFleet, type Fleet, type User } from '../vms/testing/vm-fleet.js';

/**
 * A network install end to end on a real libvirtd: a VM with no disk and a NIC on qemu's user network starts
 * through herd; the NIC's iPXE ROM gets herd's script for its MAC as DHCP's boot file, fetches the install
 * kernel and initrd herd serves from its own machine, boots them, and the guest reports back on its
 * `{{installedUrl}}`, which marks the VM installed.
 */
const hv = sharedHypervisor();
const topic = `netinstall-${randomUUID().slice(0, 6)}`;
let f: Fleet;
let owner: User;
let team: number;
let imageId: number;
let vm: { id: number; uuid: string; mac: string } | undefined;
let port: number;
/** Every request the guests made to herd's listening port: what the real HTTP server saw. */
const requests: string[] = [];

beforeAll(async () => {
  port = await freePort();
  f = await createFleet({ env: { HERD_PXE_BASE_URL: `http://${HOST_FROM_GUEST}:${port}` } });
  f.t.app.server.on('request', (req) => requests.push(`${req.method} ${req.url}`));
  await f.t.app.listen({ host: '127.0.0.1', port });
  const db = f.t.database.db;
  const rack = await createPool(db, { name: `${topic}-rack` });
  team = await createPool(db, { name: `${topic}-team`, kind: 'vm', parentId: rack });
  owner = await createUserWithToken(db, { username: `${topic}-owner` });
  await grantRole(db, team, owner.id, 'user');
  await addRealHost(f, hv.hosts[0].uri, rack);
  const image = await f.request(f.admin, 'POST', '/api/v1/images', {
    name: `${topic}-busybox`,
    kernel: hv.image.kernel,
    initrd: hv.image.initrd,
    cmdline: 'console=ttyS0 quiet panic=-1 herd.installed={{installedUrl}}',
  });
  expect(image.status, JSON.stringify(image.body)).toBe(201);
  imageId = image.body.id;
  await f.worker();
}, 60_000);

afterAll(async () => {
  if (f) await removeDomain(f, hv.hosts[0].uri, vm?.uuid);
  await f?.close();
});

const run = (action: string) => act(f, owner, vm!.id, action);
const domainXml = async () => (await f.connections.get(hv.hosts[0].uri)).domainXml(vm!.uuid);
const count = (prefix: string) => requests.filter((r) => r.startsWith(prefix)).length;

describe('network install by MAC on a real hypervisor', () => {
  test('a disk-less VM boots herd’s iPXE script, kernel and initrd, and reports itself installed', async () => {
    vm = await createVm(f, owner, {
      name: `${topic}-vm`,
      poolId: team,
      vcpus: 1,
      memoryMiB: 128,
      nics: [{ network: 'user' }],
      imageId,
    });
    expect((await f.request(owner, 'GET', `/api/v1/vms/${vm.id}`)).body.bootNetwork).toBe(true);

    await run('start');
    // While installing, the NIC is qemu's own, with herd's script for its MAC as DHCP's boot file.
    const installing = await domainXml();
    expect(installing).toContain(`bootfile=http://${HOST_FROM_GUEST}:${port}/pxe/boot?mac=${vm.mac}`);
    expect(installing).toContain(`mac=${vm.mac},bootindex=1`);
    expect(installing).not.toContain("<interface type='user'>");

    await waitFor(
      async () => (await f.request(owner, 'GET', `/api/v1/vms/${vm!.id}`)).body.bootNetwork === false,
      180_000,
      500,
    );
    // iPXE asked for the script by this MAC (it sends the colons %-escaped), then the kernel and the initrd.
    const script = requests.filter((r) => r.startsWith('GET /pxe/boot?mac='));
    expect(script.length).toBeGreaterThanOrEqual(1);
    expect(decodeURIComponent(script[0])).toBe(`GET /pxe/boot?mac=${vm.mac}`);
    expect(count(`GET /pxe/images/${imageId}/kernel`)).toBe(1);
    expect(count(`GET /pxe/images/${imageId}/initrd`)).toBe(1);
    expect(count('POST /pxe/installed/')).toBe(1);
    const installedCall = requests.find((r) => r.startsWith('POST /pxe/installed/'))!;

    // Audited as herd's own (no user), through the install report.
    const audit = await f.request(
      f.admin,
      'GET',
      `/api/v1/audit?entityType=vm&entityId=${vm.id}&action=vm.installed`,
    );
    expect(audit.body.items).toHaveLength(1);
    expect(audit.body.items[0]).toMatchObject({ userId: null, after: { bootNetwork: false, via: 'pxe' } });

    // The token served its purpose: a second report is refused, and the script now says boot from disk.
    const again = await f.t.app.inject({ method: 'POST', url: installedCall.slice('POST '.length) });
    expect(again.statusCode).toBe(404);
    const now = await f.t.app.inject({ method: 'GET', url: `/pxe/boot?mac=${vm.mac}` });
    expect(now.body).toBe('#!ipxe\nexit\n');
  }, 240_000);

  test('once installed, the next start defines a plain user-network NIC', async () => {
    expect(vm, 'the install test ran').toBeDefined();
    await run('destroy');
    await run('start');
    const xml = await domainXml();
    expect(xml).toContain("<interface type='user'>");
    expect(xml).toContain(`<mac address='${vm!.mac}'/>`);
    expect(xml).not.toContain('qemu:commandline');
    await run('destroy');
    const del = await f.request(owner, 'DELETE', `/api/v1/vms/${vm!.id}`);
    expect([202, 204]).toContain(del.status);
    if (del.status === 202) await f.waitTask(del.body.taskId, owner, 60_000);
    expect(await (await f.connections.get(hv.hosts[0].uri)).domain(vm!.uuid)).toBeNull();
  }, 120_000);
});
