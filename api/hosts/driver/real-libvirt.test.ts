import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createLogger } from '../../../lib/log.js';
import {
  type GuestSignals,
  guestCmdline,
  HOST_UUIDS,
  sharedHypervisor,
  startGuestSignals,
} from '../../../lib/testing/hypervisor.js';
import { waitFor } from '../../../lib/testing/wait.js';
import { type DomainSpec, HostConnections, type HostDriver } from './index.js';

/**
 * herd's libvirt driver against a real libvirtd (QEMU driver; KVM where /dev/kvm is usable, else TCG) booting
 * the suite's tiny guest: what the test driver cannot show — a guest that answers ACPI, saves its memory to a
 * file and comes back.
 */
const log = createLogger('silent');
const hv = sharedHypervisor();
let connections: HostConnections;
let host: HostDriver;
let signals: GuestSignals;

const spec = (name: string): DomainSpec => ({
  uuid: randomUUID(),
  name: `driver-${name}`,
  vcpus: 1,
  memoryMiB: 128,
  disks: [],
  nics: [{ mac: '52:54:00:d0:00:01', network: 'user' }],
  boot: ['hd'],
  linuxBoot: {
    kernel: hv.image.kernel,
    initrd: hv.image.initrd,
    cmdline: guestCmdline({ ready: signals.url(`ready/${name}`) }),
  },
});

beforeAll(async () => {
  connections = new HostConnections(log);
  signals = await startGuestSignals();
  host = await connections.get(hv.hosts[0].uri);
});
afterAll(async () => {
  await connections?.closeAll();
  await signals?.close();
});

describe('a real libvirtd', () => {
  test('inventory: the host UUID of its libvirtd.conf', async () => {
    const inv = await host.inventory();
    expect(inv.uuid).toBe(HOST_UUIDS[0]);
    expect(inv.cpus).toBeGreaterThan(0);
  });

  test('define, boot, suspend, resume, save, restore, ACPI shutdown, undefine', async () => {
    const s = spec('life');
    await host.define(s);
    const xml = await host.domainXml(s.uuid);
    expect(xml).toContain(`<domain type='${hv.hosts[0].domainType}'`);
    expect(xml).toContain("<interface type='user'>");
    await host.start(s.uuid);
    await signals.waitFor('ready/life');
    expect((await host.domain(s.uuid))?.state).toBe('running');

    await host.suspend(s.uuid);
    expect((await host.domain(s.uuid))?.state).toBe('paused');
    await host.resume(s.uuid);
    expect((await host.domain(s.uuid))?.state).toBe('running');

    const file = path.join(hv.sharedDir, `${s.uuid}.save`);
    await host.save(s.uuid, file);
    expect((await host.domain(s.uuid))?.state).toBe('shutoff');
    await host.restore(file);
    expect((await host.domain(s.uuid))?.state).toBe('running');

    // The guest's acpid powers it off when the power button is pressed.
    await host.shutdown(s.uuid);
    await waitFor(async () => (await host.domain(s.uuid))?.state === 'shutoff', 60_000, 250);
    await host.undefine(s.uuid);
    expect(await host.domain(s.uuid)).toBeNull();
  });
});
