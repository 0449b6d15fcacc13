import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, test } from 'vitest';
import {
  type GuestSignals,
  guestCmdline,
  sharedHypervisor,
  startGuestSignals,
} from '../../lib/testing/hypervisor.js';
import { realFleet, startTestHerd, type TestHerd } from '../../lib/testing/real-herd.js';
import { waitFor } from '../../lib/testing/wait.js';

/**
 * Cancelling a running live migration: herd (every role) on the suite's two real libvirtds, a real guest whose
 * migration bandwidth is held at 1 MiB/s from outside herd (`virsh migrate-setspeed`, so the migration lasts
 * minutes); `POST /tasks/:id/cancel` while libvirt's job runs makes the worker abort it (`DomainAbortJob`): the
 * task ends `cancelled`, the guest still runs on the source host and nothing is left on the destination.
 */
const run = promisify(execFile);
const hv = sharedHypervisor();
const virsh = async (uri: string, ...args: string[]) =>
  (await run('virsh', ['-q', '-c', uri, ...args], { timeout: 60_000 })).stdout.trim();

let dir: string;
let th: TestHerd;
let signals: GuestSignals;
let vm: { id: number; uuid: string };
let hostIds: number[];

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'herd-task-cancel-'));
  signals = await startGuestSignals();
  th = await startTestHerd(dir, { HERD_SAVE_DIR: hv.sharedDir });
  const fleet = await realFleet(
    th,
    'cancel',
    hv.hosts.map((h) => h.uri),
  );
  hostIds = fleet.hosts.map((h) => h.id);
  const created = await th.request('POST', '/api/v1/vms', {
    name: 'cancel-guest',
    poolId: fleet.teamId,
    vcpus: 1,
    memoryMiB: 128,
    nics: [{ network: 'user' }],
    linuxBoot: {
      kernel: hv.image.kernel,
      initrd: hv.image.initrd,
      cmdline: guestCmdline({ script: 'sleep 3600', ready: signals.url('ready/cancel') }),
    },
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  vm = (await th.request('GET', `/api/v1/vms/${created.body.id}`)).body;
  const started = await th.request('POST', `/api/v1/vms/${vm.id}/actions`, {
    action: 'start',
    hostId: hostIds[0],
  });
  expect(started.status, JSON.stringify(started.body)).toBe(202);
  await signals.waitFor('ready/cancel', 120_000);
}, 180_000);

afterAll(async () => {
  for (const h of hv.hosts) {
    if (!vm) break;
    await virsh(h.uri, 'destroy', vm.uuid).catch(() => undefined);
    await virsh(h.uri, 'undefine', vm.uuid).catch(() => undefined);
  }
  await th?.close();
  await signals?.close();
  await rm(dir, { recursive: true, force: true });
});

test('a running live migration cancelled: libvirt aborts it, the task ends cancelled, the guest stays on its host', async () => {
  await virsh(hv.hosts[0].uri, 'migrate-setspeed', vm.uuid, '1');
  const asked = await th.request('POST', `/api/v1/vms/${vm.id}/actions`, {
    action: 'migrate',
    hostId: hostIds[1],
  });
  expect(asked.status, JSON.stringify(asked.body)).toBe(202);
  const taskId = asked.body.taskId as number;
  // libvirt's job is under way once the task reports bytes moved.
  await waitFor(
    async () => {
      const task = (await th.request('GET', `/api/v1/tasks/${taskId}`)).body;
      expect(task.state, JSON.stringify(task)).not.toMatch(/done|failed/);
      return (task.progressDetail?.dataProcessedBytes ?? 0) > 0;
    },
    60_000,
    200,
  );

  const cancel = await th.request('POST', `/api/v1/tasks/${taskId}/cancel`);
  expect(cancel.status, JSON.stringify(cancel.body)).toBe(200);
  expect(cancel.body).toMatchObject({ state: 'running', cancelRequested: true });

  let task: { state: string; error?: string } = cancel.body;
  await waitFor(
    async () => {
      task = (await th.request('GET', `/api/v1/tasks/${taskId}`)).body;
      return task.state !== 'running';
    },
    60_000,
    250,
  );
  expect(task.state, JSON.stringify(task)).toBe('cancelled');
  expect(task.error).toMatch(/^cancelled while running: /);

  const after = (await th.request('GET', `/api/v1/vms/${vm.id}`)).body;
  expect(after).toMatchObject({ state: 'running', hostId: hostIds[0] });
  expect(await virsh(hv.hosts[0].uri, 'domstate', vm.uuid)).toBe('running');
  await expect(virsh(hv.hosts[1].uri, 'domstate', vm.uuid)).rejects.toThrow(
    /failed to get domain|not found/i,
  );

  // A finished task is not cancelled.
  const again = await th.request('POST', `/api/v1/tasks/${taskId}/cancel`);
  expect(again.status).toBe(409);
  expect(again.body.error).toBe('invalid_state');
}, 180_000);
