import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createLogger } from '../../../lib/log.js';
import {
  guestCmdline,
  HOST_UUIDS,
  sharedHypervisor,
  startGuestSignals,
} from '../../../lib/testing/hypervisor.js';
import { writeTestHost } from '../../../lib/testing/libvirt-hosts.js';
import { waitFor } from '../../../lib/testing/wait.js';
import { LibvirtClient } from '../../../libvirt/client.js';
import { type DomainEvent, DomainEventId, P } from '../../../libvirt/procedures.js';
import { type DomainSpec, UnsupportedByDriverError } from './host-driver.js';
import { RpcDriver } from './rpc-driver.js';

/**
 * The HostDriver over herd's own libvirt client, against the suite's QEMU libvirtd (no guest is booted) and a
 * test-driver host file served by the same libvirtd; where both can answer, it answers what today's driver
 * (binding + virsh) answers.
 */
const log = createLogger('silent');
const hv = sharedHypervisor();
let rpc: RpcDriver;
let dir: string;

const spec = (): DomainSpec => {
  const uuid = randomUUID();
  return {
    uuid,
    name: `rpc-driver-${uuid.slice(0, 8)}`,
    vcpus: 2,
    memoryMiB: 96,
    disks: [],
    nics: [{ mac: '52:54:00:d0:00:09', network: 'user' }],
    boot: ['hd'],
  };
};

beforeAll(async () => {
  dir = await mkdtemp(path.join(hv.sharedDir, 'rpc-driver-'));
  rpc = await RpcDriver.open(hv.hosts[0].uri, log);
});
afterAll(async () => {
  await rpc?.close();
  await rm(dir, { recursive: true, force: true });
});

// A loaded machine makes the suite's libvirtd slow to define a domain (tens of seconds): a generous bound.
describe('RpcDriver on a QEMU libvirtd', { timeout: 240_000 }, () => {
  test('inventory and domain list agree with what virsh reads', async () => {
    const virsh = async (...args: string[]) =>
      (await promisify(execFile)('virsh', ['-q', '-c', hv.hosts[0].uri, ...args])).stdout;
    const s = spec();
    await rpc.define(s);
    try {
      const mine = await rpc.inventory();
      const node = Object.fromEntries(
        (await virsh('nodeinfo')).split('\n').map((l) => l.split(/:\s+/, 2).map((x) => x.trim())),
      );
      expect(mine).toMatchObject({
        hostname: (await virsh('hostname')).trim(),
        uuid: HOST_UUIDS[0],
        arch: node['CPU model'],
        cpus: Number(node['CPU(s)']),
        mhz: Number.parseInt(node['CPU frequency'], 10),
        memoryMiB: Math.floor(Number.parseInt(node['Memory size'], 10) / 1024),
      });
      const a = await rpc.listDomains();
      const uuids = (await virsh('list', '--all', '--uuid')).split('\n').filter(Boolean);
      expect(a.map((d) => d.uuid).sort()).toEqual(uuids.sort());
      expect(a.find((d) => d.uuid === s.uuid)).toEqual({
        uuid: s.uuid,
        name: s.name,
        state: 'shutoff',
        vcpus: 2,
        memoryMiB: 96,
      });
    } finally {
      await rpc.undefine(s.uuid);
    }
    expect(await rpc.domain(s.uuid)).toBeNull();
  });

  test('CPU limits land in the definition; jobs and migrations of a stopped domain say why not', async () => {
    const s = spec();
    await rpc.define(s);
    try {
      await rpc.setCpuLimit(s.uuid, 40);
      const xml = await rpc.domainXml(s.uuid);
      expect(xml).toContain('<period>100000</period>');
      expect(xml).toContain('<quota>40000</quota>');
      expect(await rpc.jobInfo(s.uuid)).toBeNull();
      await expect(rpc.migrateLive(s.uuid, hv.hosts[1].uri)).rejects.toThrow(
        `live migration of ${s.uuid} to ${hv.hosts[1].uri} failed: Requested operation is not valid: domain is not running`,
      );
      await expect(rpc.start(randomUUID())).rejects.toThrow(/^domain .* not found on qemu\+unix/);
    } finally {
      await rpc.undefine(s.uuid);
    }
  });

  test('network and disk limits land in the definition: every disk, each NIC but the user network’s', async () => {
    const s: DomainSpec = {
      ...spec(),
      disks: [{ path: path.join(dir, 'io-a.img') }, { path: path.join(dir, 'io-b.img') }],
      nics: [
        { mac: '52:54:00:d0:00:0a', network: 'user' },
        { mac: '52:54:00:d0:00:0b', network: 'ethernet' },
      ],
    };
    await rpc.define(s);
    try {
      await rpc.setIoLimits(s.uuid, {
        netOutboundKiBps: 300,
        netOutboundPeakKiBps: 600,
        netOutboundBurstKiB: 64,
        // A peak alone (no average) is not applied: libvirt needs the average.
        netInboundPeakKiBps: 5000,
        diskReadBytesPerSec: 2_000_000,
        diskWriteIops: 40,
      });
      const xml = await rpc.domainXml(s.uuid);
      const nics = xml.match(/<interface[\s\S]*?<\/interface>/g) ?? [];
      expect(nics).toHaveLength(2);
      expect(nics[0]).not.toContain('<bandwidth>');
      expect(nics[1]).not.toContain('<inbound');
      expect(nics[1]).toMatch(/<outbound average=.300. peak=.600. burst=.64.\/>/);
      const tunes = xml.match(/<iotune>[\s\S]*?<\/iotune>/g) ?? [];
      expect(tunes).toHaveLength(2);
      for (const t of tunes) {
        expect(t).toContain('<read_bytes_sec>2000000</read_bytes_sec>');
        expect(t).toContain('<write_iops_sec>40</write_iops_sec>');
        expect(t).not.toContain('write_bytes_sec');
      }
      // Changed, then lifted: nothing left of either (libvirt may keep an empty <bandwidth/>).
      await rpc.setIoLimits(s.uuid, { netInboundKiBps: 1000, netInboundPeakKiBps: 5000 });
      expect(await rpc.domainXml(s.uuid)).toMatch(/<inbound average=.1000. peak=.5000.\/>/);
      await rpc.setIoLimits(s.uuid, {});
      const lifted = await rpc.domainXml(s.uuid);
      expect(lifted).not.toMatch(/<(inbound|outbound) /);
      expect(lifted).not.toMatch(/<iotune>[\s\S]*?<(read|write)_/);
    } finally {
      await rpc.undefine(s.uuid);
    }
  });

  test('storage: lists a pool, starts and refreshes it, creates and deletes a volume', async () => {
    const poolDir = path.join(dir, 'pool');
    await mkdir(poolDir);
    const name = `rpc-driver-${randomUUID().slice(0, 8)}`;
    const client = await LibvirtClient.connect(hv.hosts[0].uri);
    const pool = await client.call(P.storagePoolDefineXml, {
      xml: `<pool type='dir'><name>${name}</name><target><path>${poolDir}</path></target></pool>`,
    });
    try {
      expect((await rpc.listStoragePools()).find((p) => p.name === name)).toMatchObject({
        type: 'dir',
        active: false,
      });
      await rpc.refreshStoragePool(name);
      expect((await rpc.listStoragePools()).find((p) => p.name === name)?.active).toBe(true);
      const vol = await rpc.createVolume(name, 'a.img', 0.015625);
      expect(vol).toEqual({ name: 'a.img', path: path.join(poolDir, 'a.img'), sizeGiB: 0.015625 });
      expect(await rpc.listVolumes(name)).toEqual([vol]);
      await rpc.deleteVolume(name, 'a.img');
      expect(await rpc.listVolumes(name)).toEqual([]);
    } finally {
      await client.call(P.storagePoolDestroy, pool).catch(() => undefined);
      await client.call(P.storagePoolUndefine, pool);
      await client.close();
    }
  });
});

describe('RpcDriver on a test-driver host file through libvirtd', () => {
  test('named after its file; its domains, pools and volumes; no live migration', async () => {
    const fileUri = await writeTestHost(dir, {
      name: 'rpc-host7',
      cpus: 8,
      memoryMiB: 16_384,
      domains: [
        { name: 'web', uuid: randomUUID(), vcpus: 2, memoryMiB: 2048 },
        { name: 'db', uuid: randomUUID(), vcpus: 4, memoryMiB: 4096, state: 'paused' },
      ],
    });
    const driver = await RpcDriver.open(
      `test+unix://${fileUri.slice('test://'.length)}?socket=${hv.hosts[0].socket}`,
      log,
    );
    try {
      const inv = await driver.inventory();
      expect([inv.hostname, inv.cpus, inv.memoryMiB]).toEqual(['rpc-host7', 8, 16_384]);
      const domains = await driver.listDomains();
      expect(domains.map((d) => [d.name, d.state, d.vcpus, d.memoryMiB]).sort()).toEqual([
        ['db', 'paused', 4, 4096],
        ['web', 'running', 2, 2048],
      ]);
      const pools = await driver.listStoragePools();
      expect(pools.map((p) => [p.name, p.active])).toEqual([['default', true]]);
      expect((await driver.listVolumes('default')).map((v) => v.name).sort()).toEqual([
        'disk1.img',
        'disk2.img',
      ]);
      await expect(driver.migrateLive(domains[0].uuid, hv.hosts[1].uri)).rejects.toBeInstanceOf(
        UnsupportedByDriverError,
      );
    } finally {
      await driver.close();
    }
  });
});

describe('RpcDriver with a running guest', () => {
  test('boots, suspends, resumes and live-migrates a guest to the other libvirtd; events name it by UUID', async () => {
    const signals = await startGuestSignals();
    const dest = await RpcDriver.open(hv.hosts[1].uri, log);
    const events: Array<{ host: 0 | 1; ev: DomainEvent }> = [];
    const s: DomainSpec = {
      ...spec(),
      memoryMiB: 128,
      vcpus: 1,
      linuxBoot: {
        kernel: hv.image.kernel,
        initrd: hv.image.initrd,
        cmdline: guestCmdline({ ready: signals.url('ready') }),
      },
    };
    const mine = (host: 0 | 1) => (ev: DomainEvent) => {
      if (ev.domain.uuid === s.uuid) events.push({ host, ev });
    };
    const unsubscribe = [
      await rpc.connection.subscribe(DomainEventId.LIFECYCLE, mine(0)),
      await rpc.connection.subscribe(DomainEventId.JOB_COMPLETED, mine(0)),
      await dest.connection.subscribe(DomainEventId.LIFECYCLE, mine(1)),
    ];
    const names = (host: 0 | 1) =>
      events
        .filter((e) => e.host === host)
        .map(({ ev }) => (ev.kind === 'lifecycle' ? ev.eventName : ev.kind));
    try {
      await rpc.define(s);
      await rpc.start(s.uuid);
      await signals.waitFor('ready', 240_000);
      await rpc.suspend(s.uuid);
      expect((await rpc.domain(s.uuid))?.state).toBe('paused');
      await rpc.resume(s.uuid);
      expect((await rpc.listDomains()).find((d) => d.uuid === s.uuid)?.state).toBe('running');

      await rpc.migrateLive(s.uuid, hv.hosts[1].uri);
      expect(await rpc.domain(s.uuid)).toBeNull();
      expect((await dest.domain(s.uuid))?.state).toBe('running');
      await waitFor(
        async () => names(0).includes('job-completed') && names(1).includes('resumed'),
        20_000,
        50,
      );
      expect(names(0)).toEqual(
        expect.arrayContaining(['defined', 'started', 'suspended', 'resumed', 'stopped', 'job-completed']),
      );
      expect(names(1)).toEqual(expect.arrayContaining(['started', 'resumed']));
      const done = events.find((e) => e.ev.kind === 'job-completed')?.ev;
      expect(done?.kind === 'job-completed' && done.params.some((p) => p.field === 'data_total')).toBe(true);
    } finally {
      for (const off of unsubscribe) await off();
      await dest.destroy(s.uuid).catch(() => undefined);
      await dest.undefine(s.uuid).catch(() => undefined);
      await rpc.destroy(s.uuid).catch(() => undefined);
      await rpc.undefine(s.uuid).catch(() => undefined);
      await dest.close();
      await signals.close();
    }
  }, 400_000);
});
