import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createLogger } from '../../../lib/log.js';
import { writeTestHost } from '../../../lib/testing/libvirt-hosts.js';
import { startLocalDaemon, testUriThroughDaemon } from '../../../libvirt/local-daemon.js';
import { createHostDriver, stopTestDaemon } from './index.js';
import { ownTestDaemonPid } from './test-daemon.js';

/**
 * herd's own libvirtd for test:/// hosts, as `herd demo` and a herd without HERD_LIBVIRT_TEST_SOCKET use it (the
 * suite sets that variable for everything else; this file unsets it in its own worker).
 */
const log = createLogger('silent');
let dir: string;
const suiteSocket = process.env.HERD_LIBVIRT_TEST_SOCKET;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'herd-test-daemon-'));
  delete process.env.HERD_LIBVIRT_TEST_SOCKET;
});
afterAll(async () => {
  await stopTestDaemon();
  if (suiteSocket) process.env.HERD_LIBVIRT_TEST_SOCKET = suiteSocket;
  await rm(dir, { recursive: true, force: true });
});

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("herd's libvirtd for test:/// hosts", () => {
  test('a test:/// host file opens through a libvirtd herd starts, named after its file; stopping herd stops it', async () => {
    const uri = await writeTestHost(dir, {
      name: 'own-daemon-h1',
      cpus: 6,
      memoryMiB: 8192,
      domains: [{ name: 'vm-a', state: 'paused' }],
    });
    expect(uri).toMatch(/^test:\/\/\//);
    const driver = await createHostDriver(uri, log);
    try {
      expect(driver.uri).toBe(uri);
      expect(await driver.inventory()).toMatchObject({ hostname: 'own-daemon-h1', cpus: 6, memoryMiB: 8192 });
      expect((await driver.listDomains()).map((d) => [d.name, d.state])).toEqual([['vm-a', 'paused']]);
      // A second driver on the same file is a fresh fake host: what the first did is not there.
      const [vm] = await driver.listDomains();
      await driver.resume(vm.uuid);
      const second = await createHostDriver(uri, log);
      expect((await second.domain(vm.uuid))?.state).toBe('paused');
      expect((await driver.domain(vm.uuid))?.state).toBe('running');
      await second.close();
    } finally {
      await driver.close();
    }
    const pid = (await ownTestDaemonPid()) ?? 0;
    expect(pid).toBeGreaterThan(0);
    expect(alive(pid)).toBe(true);
    await stopTestDaemon();
    expect(alive(pid)).toBe(false);
  });

  test('no libvirtd binary: one clear line naming the package', async () => {
    await expect(
      startLocalDaemon(path.join(dir, 'none'), { binary: path.join(dir, 'no-libvirtd') }),
    ).rejects.toThrow(
      /no-libvirtd not found: libvirt's test driver is served by a libvirtd \(apt-get install libvirt-daemon\)/,
    );
  });

  test('test:///X goes to test+unix:///X?socket=S; other URIs are unchanged', () => {
    expect(testUriThroughDaemon('test:///default', '/s/sock')).toBe('test+unix:///default?socket=/s/sock');
    expect(testUriThroughDaemon('test:///srv/h1.xml', '/s/sock')).toBe(
      'test+unix:///srv/h1.xml?socket=/s/sock',
    );
    expect(testUriThroughDaemon('qemu:///system', '/s/sock')).toBe('qemu:///system');
  });
});
