import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { freePort } from '../../lib/embedded-postgres.js';
import { startTgtd, type Tgtd } from '../../lib/testing/tgtd.js';
import { chapSecretUsage } from '../hosts/driver/storage-xml.js';
import { createRealFleet, type RealFleet } from '../vms/testing/real-fleet.js';

/**
 * `POST /api/v1/storage-pools {type: "iscsi"}` against the test's own tgtd (CHAP) and the suite's two real
 * libvirtds: the pool and its CHAP secret are defined on both hosts, the secret is in
 * no answer and in herd's database nowhere; the LUNs are listed with their sizes, a LUN added on the target is
 * found by a refresh; a wrong secret or a closed portal answers 400 and leaves nothing on either host. One VM
 * per LUN (409 for a second, also when both ask at once), LUN sizes counted in the storage quota.
 */
let r: RealFleet;
let tgtd: Tgtd;
let storageId: number;
const poolName = `iscsi-${randomUUID().slice(0, 8)}`;

const body = (over: Record<string, unknown> = {}) => ({
  type: 'iscsi',
  poolId: r.rack,
  name: poolName,
  ...tgtd.poolFields(),
  ...over,
});

/** Pool and CHAP secret named `name` on host `index`, as virsh sees them. */
async function onHost(index: number, name: string) {
  const pools = (await r.virsh(index, 'pool-list', '--all', '--name')).split('\n').map((l) => l.trim());
  const secrets = await r.virsh(index, 'secret-list');
  return { pool: pools.includes(name), secret: secrets.includes(chapSecretUsage(name)) };
}

beforeAll(async () => {
  tgtd = await startTgtd();
  r = await createRealFleet();
});
afterAll(async () => {
  if (storageId) {
    // Detach every VM's LUN first: a pool with attached volumes is kept.
    await r?.f.t.database.db.updateTable('volumes').set({ vm_id: null }).execute();
    await r?.f.request(r.f.admin, 'DELETE', `/api/v1/storage-pools/${storageId}`);
  }
  for (const index of r?.hv.hosts.keys() ?? []) {
    await r.virsh(index, 'pool-destroy', poolName).catch(() => undefined);
    await r.virsh(index, 'pool-undefine', poolName).catch(() => undefined);
  }
  await r?.close();
  await tgtd?.stop();
});

describe('iSCSI storage pools through the API', { timeout: 120_000 }, () => {
  test('a wrong CHAP secret or a closed portal: 400, and neither host keeps a pool or a secret', async () => {
    const wrong = await r.f.request(
      r.f.admin,
      'POST',
      '/api/v1/storage-pools',
      body({ chapSecret: 'wrong-one' }),
    );
    expect(wrong.status, JSON.stringify(wrong.body)).toBe(400);
    expect(wrong.body.message).toMatch(/Authentication failure/);
    expect(wrong.body.field).toBe('chapSecret');
    expect(JSON.stringify(wrong.body)).not.toContain('wrong-one');
    const closed = await r.f.request(
      r.f.admin,
      'POST',
      '/api/v1/storage-pools',
      body({ port: await freePort() }),
    );
    expect(closed.status, JSON.stringify(closed.body)).toBe(400);
    expect(closed.body.field).toBe('portal');
    for (const index of r.hv.hosts.keys()) {
      expect(await onHost(index, poolName)).toEqual({ pool: false, secret: false });
    }
    expect((await r.f.request(r.f.admin, 'GET', `/api/v1/storage-pools?poolId=${r.rack}`)).body.total).toBe(
      0,
    );

    const half = await r.f.request(
      r.f.admin,
      'POST',
      '/api/v1/storage-pools',
      body({ chapSecret: undefined }),
    );
    expect(half.status).toBe(400);
  });

  test('defined on both hosts with the secret in their libvirt only; LUNs with sizes; a new LUN found by refresh', async () => {
    const res = await r.f.request(r.f.admin, 'POST', '/api/v1/storage-pools', body());
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    storageId = res.body.id;
    expect(res.body).toMatchObject({
      type: 'iscsi',
      libvirtType: 'iscsi-direct',
      supportsVolumeCreation: false,
      params: { portal: '127.0.0.1', port: tgtd.port, targetIqn: tgtd.iqn, chapUsername: tgtd.chapUsername },
    });
    expect(res.body.params).not.toHaveProperty('chapSecret');
    expect(JSON.stringify(res.body)).not.toContain(tgtd.chapSecret);
    for (const index of r.hv.hosts.keys()) {
      expect(await onHost(index, poolName)).toEqual({ pool: true, secret: true });
    }
    // Nowhere in herd's database: neither the pool's row nor the audit trail.
    const db = r.f.t.database.db;
    const rows = JSON.stringify([
      await db.selectFrom('storage_pools').selectAll().execute(),
      await db.selectFrom('audit_log').selectAll().execute(),
    ]);
    expect(rows).not.toContain(tgtd.chapSecret);

    const luns = async () =>
      (await r.f.request(r.f.admin, 'GET', `/api/v1/storage-pools/${storageId}/volumes`)).body.items.map(
        (v: { name: string; sizeGiB: number; vmId: number | null }) => [
          v.name,
          Math.round(v.sizeGiB * 1000) / 1000,
          v.vmId,
        ],
      );
    expect(await luns()).toEqual([
      ['unit:0:0:1', 1, null],
      ['unit:0:0:2', 2, null],
    ]);
    await tgtd.addLun(3, 0.5);
    const refreshed = await r.f.request(r.f.admin, 'POST', `/api/v1/storage-pools/${storageId}/refresh`, {});
    expect(refreshed.body).toMatchObject({ added: 1, removed: 0 });
    expect(await luns()).toEqual([
      ['unit:0:0:1', 1, null],
      ['unit:0:0:2', 2, null],
      ['unit:0:0:3', 0.5, null],
    ]);
    // A second pool of that name: refused before touching a host.
    const again = await r.f.request(r.f.admin, 'POST', '/api/v1/storage-pools', body());
    expect(again.status).toBe(409);
  });

  test('one VM per LUN: a second claim is refused, also when two ask at once; LUN sizes count in the quota', async () => {
    const vols = (await r.f.request(r.f.admin, 'GET', `/api/v1/storage-pools/${storageId}/volumes`)).body
      .items;
    const lun = (n: number) => vols.find((v: { name: string }) => v.name === `unit:0:0:${n}`).id as number;
    /** A small VM (never started) on one LUN. */
    const vmOn = (topic: string, volumeId: number) =>
      r.f.request(r.f.admin, 'POST', '/api/v1/vms', {
        name: `${topic}-${randomUUID().slice(0, 6)}`,
        poolId: r.team,
        vcpus: 1,
        memoryMiB: 64,
        volumes: [volumeId],
      });
    const first = await r.createVm('lun', { volumes: [lun(1)] });
    const second = await vmOn('lun', lun(1));
    expect(second.status).toBe(409);
    expect(second.body.error).toBe('volume_in_use');

    const race = await Promise.all([0, 1, 2, 3].map((i) => vmOn(`race-${i}`, lun(3))));
    expect(race.map((x) => x.status).sort()).toEqual([201, 409, 409, 409]);

    const listed = (await r.f.request(r.f.admin, 'GET', `/api/v1/storage-pools/${storageId}/volumes`)).body
      .items;
    expect(listed.find((v: { id: number }) => v.id === lun(1)).vmId).toBe(first.id);

    // Attached: 1 GiB + 0.5 GiB (to the MiB). A quota of 3 GiB leaves no room for the 2 GiB LUN.
    const usage = (await r.f.request(r.f.admin, 'GET', `/api/v1/pools/${r.team}/usage`)).body;
    expect(usage.total.storageGiB.used).toBeCloseTo(1.5, 3);
    const put = await r.f.request(r.f.admin, 'PUT', `/api/v1/pools/${r.team}/quota`, { storageGiB: 3 });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    const over = await vmOn('big', lun(2));
    expect(over.status).toBe(409);
    expect(JSON.stringify(over.body)).toMatch(/storage/i);
    expect(
      (await r.f.request(r.f.admin, 'PUT', `/api/v1/pools/${r.team}/quota`, { storageGiB: null })).status,
    ).toBe(200);
  });

  test('forgetting the pool undefines it and its secret on both hosts', async () => {
    // Refused while a VM holds a LUN.
    const held = await r.f.request(r.f.admin, 'DELETE', `/api/v1/storage-pools/${storageId}`);
    expect(held.status).toBe(409);
    await r.f.t.database.db.updateTable('volumes').set({ vm_id: null }).execute();
    const gone = await r.f.request(r.f.admin, 'DELETE', `/api/v1/storage-pools/${storageId}`);
    expect(gone.status).toBe(204);
    for (const index of r.hv.hosts.keys()) {
      expect(await onHost(index, poolName)).toEqual({ pool: false, secret: false });
    }
    storageId = 0;
  });
});
