/**
 * The client against the suite's two QEMU libvirtds (lib/testing/hypervisor.ts): what herd asks of a real host
 * without booting a guest: capabilities, node info, define/undefine, lists, bulk stats, scheduler parameters,
 * storage pools and volumes, secrets, events, and the errors libvirt gives for operations on a domain that is not
 * running (save, job abort, migration: their arguments reach the daemon and are understood).
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sharedHypervisor } from '../lib/testing/hypervisor.js';
import { LibvirtClient } from './client.js';
import { ErrorCode, type LibvirtError } from './packet.js';
import { type DomainEvent, DomainEventId, type DomainRef, P } from './procedures.js';
import { paramsRecord } from './xdr.js';

const run = promisify(execFile);
const VIR_DOMAIN_AFFECT_CONFIG = 2;
const VIR_MIGRATE_LIVE = 1;
const VIR_MIGRATE_PEER2PEER = 2;

let client: LibvirtClient;
let host: ReturnType<typeof sharedHypervisor>['hosts'][number];
let dir: string;

beforeAll(async () => {
  const hv = sharedHypervisor();
  host = hv.hosts[0];
  dir = await mkdtemp(path.join(hv.sharedDir, 'rpc-'));
  client = await LibvirtClient.connect(host.uri);
});

afterAll(async () => {
  await client?.close();
  await rm(dir, { recursive: true, force: true });
});

const virsh = async (...args: string[]) =>
  (await run('virsh', ['-q', '-c', host.uri, ...args], { timeout: 60_000 })).stdout.trim();

function domainXml(name: string, uuid: string): string {
  return `<domain type='${host.domainType}'><name>${name}</name><uuid>${uuid}</uuid><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>`;
}

async function withDomain<T>(fn: (dom: DomainRef) => Promise<T>): Promise<T> {
  const uuid = randomUUID();
  const dom = await client.call(P.domainDefineXml, domainXml(`rpc-${uuid.slice(0, 8)}`, uuid));
  try {
    return await fn(dom);
  } finally {
    await client.call(P.domainUndefine, dom).catch(() => undefined);
  }
}

// A loaded machine makes the suite's libvirtd slow to define a domain (tens of seconds): a generous bound.
describe('a QEMU host', { timeout: 240_000 }, () => {
  it('answers capabilities, node info and hostname as virsh does', async () => {
    const [caps, node, hostname] = await Promise.all([
      client.call(P.connectGetCapabilities, undefined),
      client.call(P.nodeGetInfo, undefined),
      client.call(P.connectGetHostname, undefined),
    ]);
    expect(caps).toContain(`<uuid>${host.hostUuid}</uuid>`);
    expect(hostname).toBe(await virsh('hostname'));
    const nodeinfo = await virsh('nodeinfo');
    expect(nodeinfo).toContain(`CPU(s):              ${node.cpus}`);
    expect(nodeinfo).toContain(`Memory size:         ${node.memoryKiB} KiB`);
  });

  it('defines and undefines a domain; it shows in the list and in the bulk stats, named by UUID', async () => {
    const uuid = await withDomain(async (dom) => {
      expect(await virsh('domuuid', dom.name)).toBe(dom.uuid);
      const all = await client.call(P.connectListAllDomains, undefined);
      expect(all.map((d) => d.uuid)).toContain(dom.uuid);
      const stats = await client.call(P.connectGetAllDomainStats, { domains: [dom] });
      expect(stats).toHaveLength(1);
      expect(stats[0].domain.uuid).toBe(dom.uuid);
      expect(paramsRecord(stats[0].params)['state.state']).toBe(5);
      const info = await client.call(P.domainGetInfo, dom);
      expect([info.state, info.maxMemKiB, info.vcpus]).toEqual([5, 65_536n, 1]);
      expect(await client.call(P.domainGetXmlDesc, { dom })).toContain(`<uuid>${dom.uuid}</uuid>`);
      return dom.uuid;
    });
    const err = (await client.call(P.domainLookupByUuid, uuid).catch((e) => e)) as LibvirtError;
    expect([err.code, err.message]).toEqual([
      ErrorCode.NO_DOMAIN,
      `Domain not found: no domain with matching uuid '${uuid}'`,
    ]);
  });

  it('reads and sets scheduler parameters (CPU quota) in the persistent definition', async () => {
    await withDomain(async (dom) => {
      const flags = VIR_DOMAIN_AFFECT_CONFIG;
      const type = await client.call(P.domainGetSchedulerType, dom);
      expect(type.type).toBe('posix');
      const before = paramsRecord(
        await client.call(P.domainGetSchedulerParametersFlags, { dom, nparams: type.nparams, flags }),
      );
      expect(before).toHaveProperty('vcpu_quota');
      await client.call(P.domainSetSchedulerParametersFlags, {
        dom,
        flags,
        params: [
          { field: 'vcpu_period', type: 'ullong', value: 100_000n },
          { field: 'vcpu_quota', type: 'llong', value: 25_000n },
        ],
      });
      const after = paramsRecord(
        await client.call(P.domainGetSchedulerParametersFlags, { dom, nparams: type.nparams, flags }),
      );
      expect([after.vcpu_period, after.vcpu_quota]).toEqual([100_000n, 25_000n]);
      expect(await virsh('schedinfo', dom.uuid, '--config')).toMatch(/vcpu_quota\s*: 25000/);
    });
  });

  it('gives libvirt’s own errors for jobs, saves and migrations of a domain that is not running', async () => {
    await withDomain(async (dom) => {
      const attempts = await Promise.all([
        client.call(P.domainGetJobStats, { dom }).then(
          (r) => r,
          (e) => e,
        ),
        client.call(P.domainAbortJob, dom).catch((e) => e),
        client.call(P.domainSave, { dom, to: path.join(dir, 'never.save') }).catch((e) => e),
        client
          .call(P.domainMigratePerform3Params, {
            dom,
            dconnuri: 'qemu+unix:///system?socket=/nonexistent',
            params: [{ field: 'bandwidth', type: 'ullong', value: 0n }],
            flags: VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER,
          })
          .catch((e) => e),
      ]);
      // Job stats of a domain with no job: type 0 (VIR_DOMAIN_JOB_NONE), or "not running".
      const stats = attempts[0] as { type: number } | LibvirtError;
      if ('type' in stats) expect(stats.type).toBe(0);
      else expect(stats.code).toBe(ErrorCode.OPERATION_INVALID);
      for (const err of attempts.slice(1) as LibvirtError[]) {
        expect(err.code).toBe(ErrorCode.OPERATION_INVALID);
        expect(err.message).toBe('Requested operation is not valid: domain is not running');
        expect(err.local).toBe(false);
      }
    });
  });

  it('defines, builds, starts and refreshes a dir pool; creates, lists and deletes a volume', async () => {
    const poolDir = path.join(dir, 'pool');
    await mkdir(poolDir);
    const name = `rpc-pool-${randomUUID().slice(0, 8)}`;
    const pool = await client.call(P.storagePoolDefineXml, {
      xml: `<pool type='dir'><name>${name}</name><target><path>${poolDir}</path></target></pool>`,
    });
    try {
      await client.call(P.storagePoolBuild, { pool });
      await client.call(P.storagePoolCreate, { pool });
      await client.call(P.storagePoolSetAutostart, { pool, autostart: true });
      expect(await client.call(P.storagePoolIsActive, pool)).toBe(true);
      expect((await client.call(P.connectListAllStoragePools, undefined)).map((p) => p.name)).toContain(name);
      const vol = await client.call(P.storageVolCreateXml, {
        pool,
        xml: `<volume><name>disk.img</name><capacity unit='MiB'>16</capacity><target><format type='raw'/></target></volume>`,
      });
      expect(await client.call(P.storageVolGetPath, vol)).toBe(path.join(poolDir, 'disk.img'));
      const info = await client.call(P.storageVolGetInfo, vol);
      expect(info.capacity).toBe(16n * 1024n * 1024n);
      await client.call(P.storagePoolRefresh, { pool });
      const vols = await client.call(P.storagePoolListAllVolumes, { pool });
      expect(vols.map((v) => v.name)).toEqual(['disk.img']);
      expect(await virsh('vol-list', name)).toContain('disk.img');
      expect(await client.call(P.storagePoolGetXmlDesc, { pool })).toContain(`<name>${name}</name>`);
      const poolInfo = await client.call(P.storagePoolGetInfo, pool);
      expect(poolInfo.state).toBe(2);
      await client.call(P.storageVolDelete, { vol });
      expect(await client.call(P.storagePoolListAllVolumes, { pool })).toEqual([]);
    } finally {
      await client.call(P.storagePoolDestroy, pool).catch(() => undefined);
      await client.call(P.storagePoolUndefine, pool).catch(() => undefined);
    }
  });

  it('defines a secret and sets its value (the value never comes back through virsh’s list)', async () => {
    const uuid = randomUUID();
    const secret = await client.call(P.secretDefineXml, {
      xml: `<secret ephemeral='no' private='yes'><uuid>${uuid}</uuid><usage type='iscsi'><target>rpc-${uuid.slice(0, 8)}</target></usage></secret>`,
    });
    try {
      expect(secret.uuid).toBe(uuid);
      await client.call(P.secretSetValue, { secret, value: Buffer.from('chap-secret') });
      expect((await client.call(P.secretLookupByUuid, uuid)).usageId).toBe(`rpc-${uuid.slice(0, 8)}`);
      expect(await virsh('secret-list')).toContain(uuid);
    } finally {
      await client.call(P.secretUndefine, secret);
    }
  });

  it('pushes lifecycle events for domains virsh defines and undefines', async () => {
    const callbackId = await client.registerDomainEvent(DomainEventId.LIFECYCLE);
    const uuid = randomUUID();
    const seen: DomainEvent[] = [];
    const listener = (ev: DomainEvent) => ev.domain.uuid === uuid && seen.push(ev);
    client.on('event', listener);
    try {
      const file = path.join(dir, 'evt.xml');
      await import('node:fs/promises').then((fs) =>
        fs.writeFile(file, domainXml(`rpc-evt-${uuid.slice(0, 8)}`, uuid)),
      );
      await virsh('define', file);
      await virsh('undefine', uuid);
      const deadline = Date.now() + 20_000;
      while (seen.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(seen.map((e) => (e.kind === 'lifecycle' ? e.eventName : e.kind))).toEqual([
        'defined',
        'undefined',
      ]);
      expect(seen.every((e) => e.callbackId === callbackId)).toBe(true);
    } finally {
      client.off('event', listener);
      await client.deregisterDomainEvent(callbackId);
    }
  });
});
