import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTgtd, type Tgtd } from '../../lib/testing/tgtd.js';
import { chapSecretUsage } from '../hosts/driver/storage-xml.js';
import { createRealFleet, type RealFleet, type RealVm } from '../vms/testing/real-fleet.js';

/**
 * A real guest on an iSCSI LUN (the test's own tgtd, CHAP), through qemu's own iSCSI client on either of the
 * suite's libvirtds: it writes a marker to its LUN on one host, is destroyed, started on the other host and
 * reads the marker back; then it migrates live back to the first host (its disk stays on the target: nothing
 * copied) and keeps running there.
 */
let r: RealFleet;
let tgtd: Tgtd;
let vm: RealVm;
const poolName = `lun-guest-${randomUUID().slice(0, 8)}`;
const marker = `herd-marker-${randomUUID().slice(0, 8)}`;
const wrote = `wrote/${poolName}`;
const read = `read/${poolName}`;
const tick = `tick/${poolName}`;

beforeAll(async () => {
  tgtd = await startTgtd({ luns: [0.0625] });
  r = await createRealFleet();
  const sp = await r.f.request(r.f.admin, 'POST', '/api/v1/storage-pools', {
    type: 'iscsi',
    poolId: r.rack,
    name: poolName,
    ...tgtd.poolFields(),
  });
  expect(sp.status, JSON.stringify(sp.body)).toBe(201);
  const volumes = (await r.f.request(r.f.admin, 'GET', `/api/v1/storage-pools/${sp.body.id}/volumes`)).body;
  expect(volumes.items).toHaveLength(1);
  // First boot: the LUN is blank, the guest writes the marker. Later boots: it finds it and says so. Then it
  // calls home every second.
  const script = [
    `found=$(dd if=/dev/vda bs=512 count=1 2>/dev/null | tr -cd 'a-z0-9-')`,
    `if [ "$found" = "${marker}" ]; then wget -q -O /dev/null ${r.signals.url(read)}`,
    `else printf '${marker}' | dd of=/dev/vda bs=512 conv=sync,fsync 2>/dev/null && sync && wget -q -O /dev/null ${r.signals.url(wrote)}; fi`,
    `while true; do wget -q -O /dev/null ${r.signals.url(tick)}; sleep 1; done`,
  ].join('\n');
  vm = await r.createVm('lun', { volumes: [volumes.items[0].id], script });
});
afterAll(async () => {
  await r?.close();
  for (const index of r?.hv.hosts.keys() ?? []) {
    await r.virsh(index, 'pool-destroy', poolName).catch(() => undefined);
    await r.virsh(index, 'pool-undefine', poolName).catch(() => undefined);
  }
  await tgtd?.stop();
});

describe('a guest on an iSCSI LUN', () => {
  test('writes a marker on one host, reads it back on the other, then migrates live without copying its disk', {
    timeout: 600_000,
  }, async () => {
    const first = await r.act(vm.id, { action: 'start', hostId: r.hosts[0].id });
    expect(first.state, first.error).toBe('done');
    const xml = await r.virsh(0, 'dumpxml', vm.uuid);
    expect(xml).toContain(`protocol='iscsi' name='${tgtd.iqn}/1'`);
    expect(xml).toContain(`<secret type='iscsi' usage='${chapSecretUsage(poolName)}'/>`);
    expect(xml).not.toContain(tgtd.chapSecret);
    await r.signals.waitFor(wrote, 240_000);
    expect(r.signals.count(read)).toBe(0);

    expect((await r.act(vm.id, { action: 'destroy' })).state).toBe('done');
    const second = await r.act(vm.id, { action: 'start', hostId: r.hosts[1].id });
    expect(second.state, second.error).toBe('done');
    await r.signals.waitFor(read, 240_000);
    expect(r.signals.count(wrote)).toBe(1);

    const seen = r.signals.count(tick);
    await r.signals.waitFor(tick, 60_000, seen + 2);
    const migrated = await r.act(vm.id, { action: 'migrate', hostId: r.hosts[0].id }, 240_000);
    expect(migrated.state, migrated.error).toBe('done');
    expect(migrated.result).toMatchObject({ live: true, from: r.hosts[1].id, to: r.hosts[0].id });
    expect((await r.virsh(0, 'domstate', vm.uuid)).trim()).toBe('running');
    expect(await r.virsh(0, 'domblklist', vm.uuid)).toContain(`${tgtd.iqn}/1`);
    const after = r.signals.count(tick);
    await r.signals.waitFor(tick, 60_000, after + 3);
    expect(await r.vm(vm.id)).toMatchObject({ state: 'running', hostId: r.hosts[0].id });
  });
});
