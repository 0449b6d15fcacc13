import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { waitFor } from '../../lib/testing/wait.js';
import { createRealFleet, type RealFleet, type RealVm } from '../vms/testing/real-fleet.js';

/**
 * Two `herd serve --only worker` processes of the built command line on one PostgreSQL, the suite's real
 * libvirtds as hosts; the worker running a start, a save or a live migration is killed (SIGKILL) in the middle.
 * The other worker takes the task over once its lease runs out, never runs it a second time, ends it failed
 * with the reason, and herd's VM state matches libvirt's within one heartbeat.
 */
const CLI = path.resolve('dist/app/cli.js');
const LEASE_SECONDS = 3;
const HEARTBEAT_SECONDS = 2;

interface Worker {
  child: ChildProcess;
  workerId: string;
  log: string[];
}

let r: RealFleet;
let vm: RealVm;
const workers: Worker[] = [];

async function startWorker(): Promise<Worker> {
  const child = spawn(process.execPath, [CLI, 'serve', '--only', 'worker'], {
    env: {
      ...process.env,
      DATABASE_URL: r.f.t.database.url,
      INFLUX_URL: '',
      HERD_DATA_DIR: path.join(r.f.dir, `worker-${workers.length}`),
      HERD_SAVE_DIR: r.saveDir,
      HERD_TASK_LEASE_SECONDS: String(LEASE_SECONDS),
      HERD_HEARTBEAT_SECONDS: String(HEARTBEAT_SECONDS),
      HERD_LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => log.push(line));
  const workerId = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker did not start: ${log.join('\n')}`)), 60_000);
    child.once('exit', (code) => reject(new Error(`worker exited with ${code}: ${log.join('\n')}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      log.push(line);
      try {
        const entry = JSON.parse(line) as { msg?: string; workerId?: string };
        if (entry.msg === 'task worker started' && entry.workerId) {
          clearTimeout(timer);
          resolve(entry.workerId);
        }
      } catch {}
    });
  });
  const worker = { child, workerId, log };
  workers.push(worker);
  return worker;
}

const alive = () => workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null);

beforeAll(async () => {
  r = await createRealFleet({ inProcess: false });
  vm = await r.createVm('kill');
  await startWorker();
  await startWorker();
}, 180_000);
afterAll(async () => {
  await Promise.all(
    alive().map(
      (w) =>
        new Promise<void>((resolve) => {
          w.child.once('exit', () => resolve());
          w.child.kill('SIGTERM');
        }),
    ),
  );
  await r?.close();
});

const request = (method: string, url: string, body?: unknown) => r.f.request(r.f.admin, method, url, body);
const getTask = async (id: number) => (await request('GET', `/api/v1/tasks/${id}`)).body;

/** Where libvirt has the VM's domain and in which of herd's states (`saved`: shut off with herd's image). */
async function libvirtTruth(): Promise<{ hostId: number | null; state: string }> {
  for (const [index, host] of r.hosts.entries()) {
    const out = await r.virsh(index, 'domstate', vm.uuid).catch(() => null);
    if (out === null) continue;
    const state = out.trim().replace('shut off', 'shutoff');
    return { hostId: host.id, state };
  }
  return { hostId: null, state: 'undefined' };
}

/** herd's record agrees with libvirt (a saved VM is shut off to libvirt). */
async function agrees(): Promise<boolean> {
  const [herd, truth] = await Promise.all([r.vm(vm.id), libvirtTruth()]);
  if (truth.state === 'undefined') return herd.state === 'defined' || herd.state === 'saved';
  const state = herd.state === 'saved' ? 'shutoff' : herd.state;
  return herd.hostId === truth.hostId && state === truth.state;
}

/**
 * Asks for `body`, SIGKILLs the worker that runs it once `midway` holds for the running task, and checks what
 * follows: taken over by the survivor, never run twice, failed with the reason, herd true to libvirt.
 */
async function killMidway(
  body: Record<string, unknown>,
  midway: (task: any) => boolean,
  libvirtDone: () => Promise<boolean> = async () => true,
) {
  const res = await request('POST', `/api/v1/vms/${vm.id}/actions`, body);
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  const taskId = res.body.taskId;
  let running: any;
  await waitFor(
    async () => {
      running = await getTask(taskId);
      if (running.state !== 'queued' && running.state !== 'running')
        throw new Error(`the task ended before it could be killed: ${JSON.stringify(running)}`);
      return running.state === 'running' && midway(running);
    },
    60_000,
    20,
  );
  const victim = workers.find((w) => w.workerId === running.workerId)!;
  expect(victim, `task runs on ${running.workerId}`).toBeDefined();
  victim.child.kill('SIGKILL');
  await new Promise((resolve) => victim.child.once('exit', resolve));
  const survivor = alive()[0];

  let task: any;
  await waitFor(
    async () => {
      task = await getTask(taskId);
      return task.state !== 'running';
    },
    (LEASE_SECONDS + 10) * 1000,
    100,
  );
  expect(task.state).toBe('failed');
  expect(task.error).toContain(`the worker running this task (${victim.workerId}) stopped`);
  expect(task.error).toMatch(/VM state read again from libvirt|VM defined on no host/);
  expect(task.workerId).toBe(survivor.workerId);
  // Run once: the survivor never started it (it only resolved it), its start time is the killed worker's.
  expect(task.startedAt).toBe(running.startedAt);
  const mine = survivor.log.filter((l) => l.includes(`"taskId":${taskId}`));
  expect(mine.some((l) => l.includes('resolving a task left by a dead worker'))).toBe(true);
  expect(mine.some((l) => l.includes('"msg":"task failed"'))).toBe(false);

  // herd's VM matches libvirt within one heartbeat of the task's end (of libvirt's own job, which goes on).
  await waitFor(libvirtDone, 60_000, 250);
  await waitFor(agrees, (HEARTBEAT_SECONDS + 3) * 1000, 200);
  await startWorker();
  return task;
}

/** Brings the VM to running on `hostIndex` through herd when a kill left it elsewhere. */
async function ensureRunning(hostIndex = 0) {
  const current = await r.vm(vm.id);
  if (current.state === 'running') return;
  const action = current.state === 'saved' ? 'restore' : current.state === 'paused' ? 'resume' : 'start';
  const res = await request('POST', `/api/v1/vms/${vm.id}/actions`, {
    action,
    ...(action === 'resume' ? {} : { hostId: r.hosts[hostIndex].id }),
  });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  const done = await r.f.waitTask(res.body.taskId, r.f.admin, 120_000);
  expect(done.state, done.error).toBe('done');
}

describe('a worker killed mid-task on a real hypervisor', () => {
  test('start', async () => {
    await killMidway({ action: 'start', hostId: r.hosts[0].id }, () => true);
  });

  test('save', async () => {
    await ensureRunning();
    await r.signals.waitFor(vm.readyName, 120_000);
    await killMidway({ action: 'save' }, () => true);
    const after = await r.vm(vm.id);
    // The save went on in libvirtd: herd found the image and calls the VM saved.
    if ((await libvirtTruth()).state === 'shutoff') {
      expect(after.state).toBe('saved');
      expect(after.savePath).toBe(path.join(r.saveDir, `herd-${vm.uuid}.save`));
    }
  });

  test('live migration', async () => {
    await ensureRunning();
    await r.virsh(0, 'migrate-setspeed', vm.uuid, '20');
    // Killed while libvirt is moving memory (the task shows libvirt's progress).
    // The migration itself is libvirt's (driven by the source libvirtd) and completes without the worker.
    const gone = async () => (await r.virsh(0, 'domstate', vm.uuid).catch(() => null)) === null;
    await killMidway(
      { action: 'migrate', hostId: r.hosts[1].id },
      (t) => t.progressDetail !== undefined,
      gone,
    );
    expect(await r.vm(vm.id)).toMatchObject({ state: 'running', hostId: r.hosts[1].id });
  });
});
