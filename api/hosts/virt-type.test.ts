import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createLogger } from '../../lib/log.js';
import { createTestApp, type TestApp } from '../../lib/testing/app.js';
import { sharedHypervisor } from '../../lib/testing/hypervisor.js';
import { writeTestHost } from '../../lib/testing/libvirt-hosts.js';
import { authHeader, createPool, createUserWithToken, grantRole } from '../../lib/testing/users.js';
import { kvmStartError } from '../vms/vm-task-handler.js';
import { chooseVirtType, HostConnections, virtSupportFromCapabilities } from './driver/index.js';

/** A QEMU driver's capabilities, cut to what the rule reads: the host CPU's features and the guest domains. */
function capabilities(options: { features: string[]; domains: string[] }): string {
  return `<capabilities><host><uuid>5e0f3c1a-4d2b-4e8f-9a6c-00000000000a</uuid><cpu><arch>x86_64</arch>
    <model>Skylake-Client-IBRS</model><vendor>Intel</vendor>
    ${options.features.map((f) => `<feature name='${f}'/>`).join('')}</cpu></host>
    <guest><os_type>hvm</os_type><arch name='x86_64'><emulator>/usr/bin/qemu-system-x86_64</emulator>
    ${options.domains.map((d) => `<domain type='${d}'/>`).join('')}</arch></guest></capabilities>`;
}

describe('the auto rule, from capabilities', () => {
  test('KVM offered and the CPU shows vmx or svm: kvm', () => {
    for (const flag of ['vmx', 'svm']) {
      const support = virtSupportFromCapabilities(
        capabilities({ features: ['ds', flag, 'pdcm'], domains: ['qemu', 'kvm'] }),
      );
      expect(support).toEqual({ domainTypes: ['qemu', 'kvm'], cpuVirtFeatures: [flag] });
      expect(chooseVirtType(support, 'auto')).toEqual({
        type: 'kvm',
        reason: `KVM offered and the CPU shows ${flag}`,
      });
    }
  });

  test('KVM offered but no vmx/svm (a /dev/kvm that hangs its guests): qemu, and says why', () => {
    const support = virtSupportFromCapabilities(
      capabilities({ features: ['ds', 'pdcm'], domains: ['qemu', 'kvm'] }),
    );
    expect(chooseVirtType(support, 'auto')).toEqual({
      type: 'qemu',
      reason: 'KVM offered but the CPU shows no vmx/svm: guests run emulated',
    });
    // The operator may insist.
    expect(chooseVirtType(support, 'kvm').type).toBe('kvm');
    expect(chooseVirtType(support, 'qemu').type).toBe('qemu');
  });

  test('no KVM offered: qemu under auto; kvm cannot be had, and the reason names the setting', () => {
    const support = virtSupportFromCapabilities(capabilities({ features: ['vmx'], domains: ['qemu'] }));
    expect(chooseVirtType(support, 'auto')).toEqual({
      type: 'qemu',
      reason: 'libvirt offers no KVM on this host: guests run emulated',
    });
    const forced = chooseVirtType(support, 'kvm');
    expect(forced.type).toBeNull();
    expect(forced.reason).toMatch(/set virtType to auto or qemu/);
  });

  test("libvirt's test driver and unread hosts", () => {
    expect(chooseVirtType({ domainTypes: ['test'], cpuVirtFeatures: [] }, 'auto').type).toBe('test');
    expect(chooseVirtType(null, 'auto')).toEqual({
      type: null,
      reason: "not known yet: the host's capabilities have not been read",
    });
  });

  test('a start refused by KVM names the setting that chose it', () => {
    const err = new Error(
      'internal error: process exited while connecting to monitor: Could not access KVM kernel module',
    );
    expect(kvmStartError(err, { id: 7, virt_type: null }, 'auto').message).toMatch(
      /host's virtType \(auto\) chose KVM: set it to qemu .*PATCH \/api\/v1\/vms\/7/,
    );
    expect(kvmStartError(err, { id: 7, virt_type: 'kvm' }).message).toMatch(/the VM's virtType is kvm/);
    const other = new Error('disk not found');
    expect(kvmStartError(other, { id: 7, virt_type: null })).toBe(other);
  });
});

describe('virtType through the API and on a real libvirtd', () => {
  const hv = sharedHypervisor();
  const connections = new HostConnections(createLogger('silent'));
  let t: TestApp;
  let dir: string;
  let admin: { id: number; token: string };
  let poolAdmin: { id: number; token: string };
  let rack: number;

  beforeAll(async () => {
    t = await createTestApp({ deps: { hostConnections: connections } });
    dir = await mkdtemp(path.join(tmpdir(), 'herd-virt-'));
    admin = await createUserWithToken(t.database.db, { username: 'root', superAdmin: true });
    poolAdmin = await createUserWithToken(t.database.db, { username: 'rackadmin' });
    rack = await createPool(t.database.db, { name: 'rack' });
    await grantRole(t.database.db, rack, poolAdmin.id, 'admin');
  });
  afterAll(async () => {
    await t?.close();
    await connections.closeAll();
    await rm(dir, { recursive: true, force: true });
  });

  const addHost = async (uri: string) => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/hosts',
      headers: authHeader(admin.token),
      payload: { uri, poolId: rack },
    });
    expect(res.statusCode, res.body).toBe(201);
    return res.json().id as number;
  };
  const getHost = async (id: number) =>
    (await t.app.inject({ url: `/api/v1/hosts/${id}`, headers: authHeader(poolAdmin.token) })).json();
  const patchHost = (id: number, payload: Record<string, unknown>) =>
    t.app.inject({
      method: 'PATCH',
      url: `/api/v1/hosts/${id}`,
      headers: authHeader(poolAdmin.token),
      payload,
    });

  test('a test-driver host: auto by default, effective `test`', async () => {
    const id = await addHost(await writeTestHost(dir, { name: 'virt-test', cpus: 4, memoryMiB: 4096 }));
    expect(await getHost(id)).toMatchObject({ virtType: 'auto', effectiveVirtType: 'test' });
    expect((await patchHost(id, { virtType: 'xen' })).statusCode).toBe(400);
  });

  test('the real libvirtd: what auto chose, why, and an operator who forces the other type', async () => {
    const id = await addHost(hv.hosts[0].uri);
    const host = await getHost(id);
    // The suite's libvirtds offer KVM only where the suite proved it by booting (lib/testing/kvm-probe.ts).
    const kvmOffered = hv.hosts[0].domainType === 'kvm';
    expect(host.virtType).toBe('auto');
    expect(host.virtTypeReason.length).toBeGreaterThan(10);
    if (!kvmOffered) {
      expect(host).toMatchObject({
        effectiveVirtType: 'qemu',
        virtTypeReason: 'libvirt offers no KVM on this host: guests run emulated',
      });
    }
    const patched = await patchHost(id, { virtType: 'kvm' });
    expect(patched.statusCode, patched.body).toBe(200);
    expect(patched.json().virtType).toBe('kvm');
    expect(patched.json().effectiveVirtType).toBe(kvmOffered ? 'kvm' : null);

    // The driver obeys the setting: a VM defined with `qemu` is a TCG domain; `kvm` where none is offered fails
    // before anything is defined, naming the setting.
    const driver = await connections.get(hv.hosts[0].uri);
    const spec = (virtType: 'kvm' | 'qemu') => ({
      uuid: randomUUID(),
      name: `virt-${virtType}-${randomUUID().slice(0, 8)}`,
      vcpus: 1,
      memoryMiB: 64,
      disks: [],
      nics: [],
      boot: ['hd' as const],
      virtType,
    });
    const tcg = spec('qemu');
    await driver.define(tcg);
    try {
      expect(await driver.domainXml(tcg.uuid)).toContain("<domain type='qemu'");
    } finally {
      await driver.undefine(tcg.uuid);
    }
    if (!kvmOffered) {
      const kvm = spec('kvm');
      await expect(driver.define(kvm)).rejects.toThrow(/virtType: .*libvirt offers no KVM/);
      expect(await driver.domain(kvm.uuid)).toBeNull();
    }
  });
});
