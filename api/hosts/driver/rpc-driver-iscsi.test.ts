import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { freePort } from '../../../lib/embedded-postgres.js';
import { createLogger } from '../../../lib/log.js';
import { sharedHypervisor } from '../../../lib/testing/hypervisor.js';
import { startTgtd, type Tgtd } from '../../../lib/testing/tgtd.js';
import type { StoragePoolDefinition } from './host-driver.js';
import { RpcDriver } from './rpc-driver.js';
import { chapSecretUsage } from './storage-xml.js';

const run = promisify(execFile);

/**
 * herd's iSCSI pools on the RPC driver, against the suite's QEMU libvirtd and the test's own tgtd (127.0.0.1,
 * CHAP): libvirt's `iscsi-direct` pool logs in with libiscsi and lists the LUNs; the CHAP secret is a private
 * libvirt secret; a failed login leaves neither pool nor secret behind.
 */
const log = createLogger('silent');
const hv = sharedHypervisor();
const host = hv.hosts[0];
let rpc: RpcDriver;
let tgtd: Tgtd;

const virsh = async (...args: string[]) =>
  (await run('virsh', ['-q', '-c', host.uri, ...args], { timeout: 60_000 })).stdout;
/** The libvirtd's own directory (its socket is in `<dir>/sock`): its secrets are in `<dir>/etc/secrets`. */
const secretsDir = path.join(path.dirname(path.dirname(host.socket)), 'etc', 'secrets');

const definition = (name: string, over: Partial<StoragePoolDefinition> = {}): StoragePoolDefinition =>
  ({ type: 'iscsi', name, ...tgtd.poolFields(), ...over }) as StoragePoolDefinition;

/** What libvirt has of pool `name`: the pool, and the secret by its usage. */
async function leftOver(name: string) {
  const pools = (await rpc.listStoragePools()).filter((p) => p.name === name);
  const secrets = await virsh('secret-list');
  return { pools, secret: secrets.includes(chapSecretUsage(name)) };
}

beforeAll(async () => {
  tgtd = await startTgtd();
  rpc = await RpcDriver.open(host.uri, log);
});
afterAll(async () => {
  await rpc?.close();
  await tgtd?.stop();
});

describe('iSCSI-direct pools with CHAP on the RPC driver', { timeout: 120_000 }, () => {
  test('the LUNs are listed with their sizes; a LUN added later is found by a refresh; undefine removes pool and secret', async () => {
    const name = `lun-${randomUUID().slice(0, 8)}`;
    await rpc.defineStoragePool(definition(name));
    try {
      expect((await rpc.listStoragePools()).find((p) => p.name === name)).toMatchObject({
        type: 'iscsi-direct',
        active: true,
      });
      const sizes = (vols: Array<{ name: string; sizeGiB: number }>) =>
        vols.map((v) => [v.name, Math.round(v.sizeGiB * 1000) / 1000]).sort();
      // LUN 0 is tgt's controller, without storage. libvirt (9.0) counts a LUN's blocks up to its last
      // address, one 512-byte block short of the file's size: sizes to the MiB.
      expect(sizes(await rpc.listVolumes(name))).toEqual([
        ['unit:0:0:0', 0],
        ['unit:0:0:1', 1],
        ['unit:0:0:2', 2],
      ]);
      await tgtd.addLun(3, 0.5);
      expect((await rpc.listVolumes(name)).some((v) => v.name === 'unit:0:0:3')).toBe(false);
      await rpc.refreshStoragePool(name);
      const after = await rpc.listVolumes(name);
      expect(sizes(after).find(([n]) => n === 'unit:0:0:3')).toEqual(['unit:0:0:3', 0.5]);
      expect(after.find((v) => v.name === 'unit:0:0:3')?.path).toContain(`${tgtd.iqn}-lun-3`);

      // The secret is private: libvirt does not hand its value out, and keeps it in a file only root reads.
      const uuid = (await virsh('secret-list')).split('\n').find((l) => l.includes(chapSecretUsage(name)));
      const secretUuid = uuid?.trim().split(/\s+/)[0];
      expect(secretUuid).toMatch(/^[0-9a-f-]{36}$/);
      await expect(virsh('secret-get-value', secretUuid!)).rejects.toThrow(/private/);
      const files = (await readdir(secretsDir)).filter((f) => f.startsWith(secretUuid!));
      expect(files.length).toBeGreaterThan(0);
      for (const f of files) {
        expect((await stat(path.join(secretsDir, f))).mode & 0o077).toBe(0);
        expect(await readFile(path.join(secretsDir, f), 'utf8')).not.toContain(tgtd.chapSecret);
      }
      expect(await virsh('pool-dumpxml', name)).not.toContain(tgtd.chapSecret);
    } finally {
      await rpc.undefineStoragePool(definition(name));
    }
    expect(await leftOver(name)).toEqual({ pools: [], secret: false });
    // Again, with nothing left: no error.
    await rpc.undefineStoragePool(definition(name));
  });

  test('a wrong CHAP secret or an unreachable portal fails, and leaves neither pool nor secret', async () => {
    const wrong = `lun-${randomUUID().slice(0, 8)}`;
    await expect(rpc.defineStoragePool(definition(wrong, { chapSecret: 'not-the-secret' }))).rejects.toThrow(
      /Authentication failure/,
    );
    expect(await leftOver(wrong)).toEqual({ pools: [], secret: false });

    const closed = `lun-${randomUUID().slice(0, 8)}`;
    // A port nobody listens on (freePort answers one that was free a moment ago).
    await expect(rpc.defineStoragePool(definition(closed, { port: await freePort() }))).rejects.toThrow(
      /connect/i,
    );
    expect(await leftOver(closed)).toEqual({ pools: [], secret: false });
  });
});
