import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { waitFor } from '../../lib/testing/wait.js';
import { migratesOnThisMachine } from '../hosts/driver/host-rules.js';
import { createRealFleet, type RealFleet, type RealVm } from './testing/real-fleet.js';

/**
 * Live migration between the suite's two libvirtds (distinct host UUIDs, one machine): a dir storage pool at the
 * same path on both, adopted by herd, holds the VM's disk; the running guest moves, keeps calling home every
 * second, and herd records its new host. The task's progress comes from libvirt's job info while it runs.
 * Evacuating the host then moves it back the same way.
 */
let r: RealFleet;
let vm: RealVm;
const poolName = `mig-${randomUUID().slice(0, 8)}`;
let poolDir: string;
const tickName = `tick/${poolName}`;
const tick = () => tickName;

beforeAll(async () => {
  r = await createRealFleet();
  poolDir = path.join(r.hv.sharedDir, poolName);
  await mkdir(poolDir, { recursive: true });
  for (const index of r.hv.hosts.keys()) {
    await r.virsh(index, 'pool-define-as', poolName, 'dir', '--target', poolDir);
    await r.virsh(index, 'pool-start', poolName);
  }
  const sp = await r.f.request(r.f.admin, 'POST', '/api/v1/storage-pools', {
    type: 'libvirt',
    poolId: r.rack,
    name: poolName,
  });
  expect(sp.status, JSON.stringify(sp.body)).toBe(201);
  const vol = await r.f.request(r.f.admin, 'POST', `/api/v1/storage-pools/${sp.body.id}/volumes`, {
    name: 'disk.img',
    sizeGiB: 0.0625,
  });
  expect(vol.status, JSON.stringify(vol.body)).toBe(201);
  // The guest fills part of its memory (so that the migration has data to move), then calls home every second.
  vm = await r.createVm('mig', {
    volumes: [vol.body.id],
    script: [
      'dd if=/dev/urandom of=/fill bs=1M count=32 2>/dev/null',
      `while true; do wget -q -O /dev/null ${r.signals.url(tickName)}; sleep 1; done`,
    ].join('\n'),
  });
});
afterAll(async () => {
  await r?.close();
  for (const index of r?.hv.hosts.keys() ?? []) {
    await r.virsh(index, 'pool-destroy', poolName).catch(() => undefined);
    await r.virsh(index, 'pool-undefine', poolName).catch(() => undefined);
  }
  if (poolDir) await rm(poolDir, { recursive: true, force: true });
});

/** The guest goes on calling home: `more` calls after the ones counted now. */
const keepsTicking = async (more = 3) => {
  const seen = r.signals.count(tick());
  await r.signals.waitFor(tick(), 30_000, seen + more);
};

describe('live migration between two real libvirtds', () => {
  test('a running VM moves with its disk, keeps running, and herd records the new host; progress from libvirt', async () => {
    const started = await r.act(vm.id, { action: 'start', hostId: r.hosts[0].id });
    expect(started.state, started.error).toBe('done');
    const disk = (await r.vm(vm.id)).volumes[0].path;
    expect(disk).toBe(path.join(poolDir, 'disk.img'));
    await r.signals.waitFor(tick(), 120_000, 2);

    // Slow enough to be watched: 20 MiB/s (set outside herd, as an operator would).
    await r.virsh(0, 'migrate-setspeed', vm.uuid, '20');
    const res = await r.f.request(r.f.admin, 'POST', `/api/v1/vms/${vm.id}/actions`, {
      action: 'migrate',
      hostId: r.hosts[1].id,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const samples: Array<{ progress?: number; progressDetail?: any }> = [];
    let task: any;
    await waitFor(
      async () => {
        task = (await r.f.request(r.f.admin, 'GET', `/api/v1/tasks/${res.body.taskId}`)).body;
        if (task.state === 'running' && task.progressDetail) samples.push(task);
        return task.state !== 'queued' && task.state !== 'running';
      },
      120_000,
      100,
    );
    expect(task.state, task.error).toBe('done');
    expect(task.result).toMatchObject({ live: true, from: r.hosts[0].id, to: r.hosts[1].id });

    // Intermediate values measured by libvirt, not fixed steps: bytes processed out of the guest's memory.
    const processed = [...new Set(samples.map((s) => s.progressDetail.dataProcessedBytes))];
    expect(processed.length, JSON.stringify(samples)).toBeGreaterThanOrEqual(2);
    for (const s of samples) {
      expect(s.progressDetail).toMatchObject({ source: 'libvirt', operation: 'outgoing migration' });
      expect(s.progressDetail.dataTotalBytes).toBeGreaterThanOrEqual(128 * 1024 * 1024);
      expect(s.progress).toBeCloseTo(
        0.99 * Math.min(1, s.progressDetail.dataProcessedBytes / s.progressDetail.dataTotalBytes),
        5,
      );
      expect(s.progress).toBeGreaterThan(0);
      expect(s.progress).toBeLessThan(1);
    }
    const fractions = samples.map((s) => s.progress!);
    expect([...fractions].sort((a, b) => a - b)).toEqual(fractions);
    expect(task.progress).toBe(1);

    expect(await r.vm(vm.id)).toMatchObject({ state: 'running', hostId: r.hosts[1].id });
    expect((await r.virsh(1, 'domstate', vm.uuid)).trim()).toBe('running');
    await expect(r.virsh(0, 'domstate', vm.uuid)).rejects.toThrow();
    await keepsTicking();
    expect((await r.virsh(1, 'domblklist', vm.uuid)).includes(disk)).toBe(true);
  });

  test('evacuating the host migrates the VM back live', async () => {
    const res = await r.f.request(r.f.admin, 'POST', `/api/v1/hosts/${r.hosts[1].id}/evacuate`);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body.skipped).toEqual([]);
    expect(res.body.taskIds).toHaveLength(1);
    const task = await r.f.waitTask(res.body.taskIds[0], r.f.admin, 120_000);
    expect(task.state, task.error).toBe('done');
    expect(task.result).toMatchObject({ live: true, to: r.hosts[0].id });
    expect(await r.vm(vm.id)).toMatchObject({ state: 'running', hostId: r.hosts[0].id });
    expect((await r.virsh(0, 'domstate', vm.uuid)).trim()).toBe('running');
    await keepsTicking();
    expect((await r.f.request(r.f.admin, 'GET', `/api/v1/hosts/${r.hosts[1].id}`)).body.enabled).toBe(false);
  });

  test('virsh migrate outside herd: herd follows the VM to its new host from the domain events', async () => {
    await r.virsh(
      0,
      'migrate',
      '--live',
      '--p2p',
      '--persistent',
      '--undefinesource',
      ...(migratesOnThisMachine(r.hosts[1].uri)
        ? ['--migrateuri', 'tcp://127.0.0.1', '--listen-address', '127.0.0.1', '--unsafe']
        : []),
      vm.uuid,
      r.hosts[1].uri,
    );
    const from = Date.now();
    await waitFor(
      async () => {
        const answer = await r.vm(vm.id);
        return answer.hostId === r.hosts[1].id && answer.state === 'running';
      },
      5_000,
      50,
    );
    // The heartbeat is an hour: the events moved it (the source's vanished domain, then the destination's).
    expect(Date.now() - from).toBeLessThan(3_000);
    await keepsTicking(2);
  });
});
