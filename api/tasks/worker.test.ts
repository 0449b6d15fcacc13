import { type ChildProcess, spawn } from 'node:child_process';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createLogger } from '../../lib/log.js';
import { createPool, createUserWithToken, grantRole } from '../../lib/testing/users.js';
import { waitFor } from '../../lib/testing/wait.js';
import { HostConnections, type HostDriver } from '../hosts/driver/index.js';
import { createFleet, type Fleet, type User } from '../vms/testing/vm-fleet.js';
import { createVmTaskHandler } from '../vms/vm-task-handler.js';
import { JOBLESS_AFTER_MS } from './task-queue-jobs.js';
import type { RunningWorker } from './worker.js';

let f: Fleet;
let user: User;
let pool: number;
let h1: { id: number; uri: string };
let child: ChildProcess | undefined;

beforeAll(async () => {
  f = await createFleet();
  const db = f.t.database.db;
  const rack = await createPool(db, { name: 'rack' });
  pool = await createPool(db, { name: 'team', kind: 'vm', parentId: rack });
  user = await createUserWithToken(db, { username: 'u' });
  await grantRole(db, pool, user.id, 'admin');
  h1 = await f.addHost(rack, { name: 'h1', cpus: 64, memoryMiB: 262144 });
  await f.addHost(rack, { name: 'h2', cpus: 64, memoryMiB: 262144 });
});
afterAll(async () => {
  child?.kill('SIGKILL');
  await f.close();
});

async function newVm(name: string): Promise<{ id: number; uuid: string }> {
  const res = await f.request(user, 'POST', '/api/v1/vms', {
    name,
    poolId: pool,
    vcpus: 1,
    memoryMiB: 128,
    nics: 0,
  });
  expect(res.status).toBe(201);
  return (await f.request(user, 'GET', `/api/v1/vms/${res.body.id}`)).body;
}

const ask = async (vmId: number, body: Record<string, unknown>) => {
  const res = await f.request(user, 'POST', `/api/v1/vms/${vmId}/actions`, body);
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body.taskId as number;
};

describe('several workers on one database', () => {
  test('two workers never run one task twice, even when its job is handed out twice', async () => {
    // One driver per host for both workers (as in one process), counting the starts each domain gets.
    const starts = new Map<string, number>();
    const log = createLogger('silent');
    const counting = async (uri: string): Promise<HostDriver> => {
      const driver = await f.connections.get(uri);
      return new Proxy(driver, {
        get(target, prop, receiver) {
          if (prop === 'start') {
            return async (uuid: string) => {
              starts.set(uuid, (starts.get(uuid) ?? 0) + 1);
              await new Promise((r) => setTimeout(r, 5));
              return target.start(uuid);
            };
          }
          const value = Reflect.get(target, prop, receiver);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
    };
    const hosts = new HostConnections(log, counting);
    const handlers = { vm: createVmTaskHandler({ hosts, saveDir: f.saveDir }) };
    const workers: RunningWorker[] = [
      await f.worker({ handlers, workerId: 'worker-a', concurrency: 4 }),
      await f.worker({ handlers, workerId: 'worker-b', concurrency: 4 }),
    ];
    const vms = [];
    for (let i = 0; i < 30; i++) vms.push(await newVm(`twice${i}`));
    const taskIds = await Promise.all(vms.map((vm) => ask(vm.id, { action: 'start' })));
    // A second and third job for some tasks: as if a job had been handed out again.
    for (const id of taskIds.slice(0, 10)) {
      for (const copy of ['a', 'b']) {
        await sql`SELECT graphile_worker.add_job('herd_task', json_build_object('taskId', ${id}::int),
          job_key => ${`dup-${copy}-${id}`})`.execute(f.t.database.db);
      }
    }
    const tasks = await Promise.all(taskIds.map((id) => f.waitTask(id)));
    expect(tasks.map((t) => t.state)).toEqual(taskIds.map(() => 'done'));
    expect(new Set(tasks.map((t) => t.workerId))).toEqual(new Set(['worker-a', 'worker-b']));
    for (const vm of vms) expect(starts.get(vm.uuid), vm.uuid).toBe(1);
    // Every job was taken once and is gone; nothing is left locked.
    await waitFor(async () => {
      const { rows } = await sql<{
        n: number;
      }>`SELECT count(*)::int AS n FROM graphile_worker._private_jobs`.execute(f.t.database.db);
      return rows[0].n === 0;
    });
    for (const w of workers) await w.stop();
  });
});

describe('graceful shutdown', () => {
  test('a guest that ignores it: the task fails after the timeout, or with force powers the VM off', async () => {
    // libvirt's test driver shuts a domain down at once: this guest ignores the request instead.
    const deaf = new HostConnections(createLogger('silent'), async (uri) => {
      const driver = await f.connections.get(uri);
      return new Proxy(driver, {
        get(target, prop, receiver) {
          if (prop === 'shutdown') return async () => {};
          const value = Reflect.get(target, prop, receiver);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
    });
    const worker = await f.worker({
      handlers: { vm: createVmTaskHandler({ hosts: deaf, shutdownPollMs: 20 }) },
    });
    const vm = await newVm('deaf');
    await f.waitTask(await ask(vm.id, { action: 'start' }));

    const refused = await f.waitTask(await ask(vm.id, { action: 'shutdown', timeoutSeconds: 1 }));
    expect(refused.state).toBe('failed');
    expect(refused.error).toMatch(
      /^the guest did not shut down within 1 s and is still running; ask again with force: true to power it off \(VM state read again from libvirt: running on h\d\)$/,
    );
    expect((await f.request(user, 'GET', `/api/v1/vms/${vm.id}`)).body.state).toBe('running');

    const forced = await f.waitTask(await ask(vm.id, { action: 'shutdown', timeoutSeconds: 1, force: true }));
    expect(forced).toMatchObject({ state: 'done', result: { forced: true } });
    expect((await f.request(user, 'GET', `/api/v1/vms/${vm.id}`)).body.state).toBe('shutoff');
    await worker.stop();
  });
});

describe('a worker that dies', () => {
  test('killed in the middle of a task: the task fails with a clear message, the VM is as libvirt says', async () => {
    const vm = await newVm('doomed');
    let worker = await f.worker();
    await f.waitTask(await ask(vm.id, { action: 'start', hostId: h1.id }));
    await f.waitTask(await ask(vm.id, { action: 'destroy' }));
    await worker.stop();

    const taskId = await ask(vm.id, { action: 'start', hostId: h1.id });
    expect((await f.request(user, 'GET', `/api/v1/vms/${vm.id}`)).body.state).toBe('starting');
    child = spawn(process.execPath, ['--import', 'tsx', 'api/tasks/testing/stuck-worker.ts'], {
      env: {
        ...process.env,
        DATABASE_URL: f.t.database.url,
        HERD_WORKER_ID: 'doomed-worker',
        HERD_SAVE_DIR: f.saveDir,
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    await waitFor(
      async () => (await f.request(user, 'GET', `/api/v1/tasks/${taskId}`)).body.state === 'running',
      30_000,
      50,
    );
    expect((await f.request(user, 'GET', `/api/v1/tasks/${taskId}`)).body.workerId).toBe('doomed-worker');
    child.kill('SIGKILL');

    worker = await f.worker({ leaseMs: 1_000 });
    const task = await f.waitTask(taskId);
    expect(task.state).toBe('failed');
    expect(task.error).toMatch(
      /^the worker running this task \(doomed-worker\) stopped: no sign of life since \S+; the outcome is unknown; VM state read again from libvirt: shutoff on h1$/,
    );
    expect((await f.request(user, 'GET', `/api/v1/vms/${vm.id}`)).body).toMatchObject({
      state: 'shutoff',
      hostId: h1.id,
      taskId: null,
    });
    // The VM takes new actions again.
    expect((await f.waitTask(await ask(vm.id, { action: 'start' }))).state).toBe('done');
    await worker.stop();
  });

  test('died after taking a job but before starting its task: the task is queued again and runs', async () => {
    const vm = await newVm('orphan');
    const taskId = await ask(vm.id, { action: 'start' });
    await waitFor(() => jobExists(taskId));
    // As a worker that locked the job and died at once would leave it.
    await sql`UPDATE graphile_worker._private_jobs SET locked_at = now() - interval '1 minute', locked_by = 'ghost',
      attempts = 1 WHERE key = ${`task:${taskId}`}`.execute(f.t.database.db);
    const worker = await f.worker({ leaseMs: 1_000 });
    expect((await f.waitTask(taskId)).state).toBe('done');
    await worker.stop();
  });

  test('an API process died after its claim committed, before adding the job: the sweep adds it and it runs', async () => {
    const vm = await newVm('jobless');
    const taskId = await ask(vm.id, { action: 'start' });
    await waitFor(() => jobExists(taskId));
    // As that process would have left it: the task committed, queued long enough, and no job.
    await sql`SELECT graphile_worker.remove_job(${`task:${taskId}`})`.execute(f.t.database.db);
    await sql`UPDATE tasks SET created_at = now() - make_interval(secs => ${JOBLESS_AFTER_MS / 1000 + 5})
      WHERE id = ${taskId}`.execute(f.t.database.db);
    expect(await jobExists(taskId)).toBe(false);
    const worker = await f.worker({ leaseMs: 1_000 });
    expect((await f.waitTask(taskId)).state).toBe('done');
    await worker.stop();
  });
});

async function jobExists(taskId: number): Promise<boolean> {
  const { rows } =
    await sql`SELECT 1 FROM graphile_worker._private_jobs WHERE key = ${`task:${taskId}`}`.execute(
      f.t.database.db,
    );
  return rows.length > 0;
}
