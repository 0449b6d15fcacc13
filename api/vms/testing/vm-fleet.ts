import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { LiveView } from '../../../ingest/live-view.js';
import { createLogger } from '../../../lib/log.js';
import { createTestApp, type TestApp } from '../../../lib/testing/app.js';
import { type TestHostOptions, writeTestHost } from '../../../lib/testing/libvirt-hosts.js';
import { authHeader, createUserWithToken } from '../../../lib/testing/users.js';
import { waitFor } from '../../../lib/testing/wait.js';
import type { RoutePlugin } from '../../app.js';
import { HostConnections } from '../../hosts/driver/index.js';
import { apiRoutes } from '../../routes.js';
import { prepareTaskQueue } from '../../tasks/task-queue.js';
import type { TaskAnswer } from '../../tasks/tasks.service.js';
import { type RunningWorker, startWorker, type WorkerOptions } from '../../tasks/worker.js';
import { createVmTaskHandler } from '../vm-task-handler.js';

export interface User {
  id: number;
  token: string;
}

export interface Answer<T = any> {
  status: number;
  body: T;
}

/**
 * A herd API on its own database with fake libvirt hosts (test:///<file>.xml in a temporary directory),
 * graphile-worker's schema installed and task workers on demand: what the VM and task tests share.
 */
export interface Fleet {
  t: TestApp;
  dir: string;
  saveDir: string;
  connections: HostConnections;
  admin: User;
  request<T = any>(user: User, method: string, url: string, payload?: unknown): Promise<Answer<T>>;
  /** Writes a fake host and adds it through the API; answers its id and URI. */
  addHost(poolId: number, options: TestHostOptions): Promise<{ id: number; uri: string }>;
  worker(options?: Partial<WorkerOptions>): Promise<RunningWorker>;
  waitTask(taskId: number, user?: User, timeoutMs?: number): Promise<TaskAnswer>;
  close(): Promise<void>;
}

export async function createFleet(
  options: { liveView?: LiveView; env?: NodeJS.ProcessEnv; routes?: RoutePlugin[] } = {},
): Promise<Fleet> {
  const log = createLogger(process.env.HERD_TEST_LOG_LEVEL ?? 'silent');
  const connections = new HostConnections(log);
  const t = await createTestApp({
    routes: options.routes ?? apiRoutes,
    env: options.env,
    deps: { hostConnections: connections, ...(options.liveView ? { liveView: options.liveView } : {}) },
  });
  await prepareTaskQueue(t.database.pool, log);
  const dir = await mkdtemp(path.join(tmpdir(), 'herd-vms-'));
  const saveDir = path.join(dir, 'save');
  await mkdir(saveDir);
  const admin = await createUserWithToken(t.database.db, {
    username: `root-${randomUUID().slice(0, 6)}`,
    superAdmin: true,
  });
  const workers: RunningWorker[] = [];

  const request = async <T>(
    user: User,
    method: string,
    url: string,
    payload?: unknown,
  ): Promise<Answer<T>> => {
    const res = await t.app.inject({
      method: method as 'GET',
      url,
      headers: authHeader(user.token),
      ...(payload === undefined ? {} : { payload: payload as object }),
    });
    return { status: res.statusCode, body: (res.body ? res.json() : undefined) as T };
  };

  return {
    t,
    dir,
    saveDir,
    connections,
    admin,
    request,
    async addHost(poolId, hostOptions) {
      const uri = await writeTestHost(dir, hostOptions);
      const res = await request<{ id: number }>(admin, 'POST', '/api/v1/hosts', { uri, poolId });
      if (res.status !== 201)
        throw new Error(`adding host ${hostOptions.name}: ${res.status} ${JSON.stringify(res.body)}`);
      return { id: res.body.id, uri };
    },
    async worker(workerOptions = {}) {
      const worker = await startWorker({
        db: t.database.db,
        pgPool: t.database.pool,
        log,
        handlers: {
          vm: createVmTaskHandler({
            hosts: connections,
            saveDir,
            shutdownPollMs: 20,
            pxeBaseUrl: t.deps.config.pxe.baseUrl,
          }),
        },
        heartbeatMs: 200,
        leaseMs: 1_500,
        ...workerOptions,
      });
      workers.push(worker);
      return worker;
    },
    async waitTask(taskId, user = admin, timeoutMs = 15_000) {
      let task: TaskAnswer | undefined;
      await waitFor(
        async () => {
          task = (await request<TaskAnswer>(user, 'GET', `/api/v1/tasks/${taskId}`)).body;
          return task.state !== 'queued' && task.state !== 'running';
        },
        timeoutMs,
        20,
      );
      return task!;
    },
    async close() {
      for (const w of workers) await w.stop();
      await t.close();
      await connections.closeAll();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Storage rows straight in the database (the storage API is tested on its own): volumes with paths. */
export async function insertVolumes(fleet: Fleet, poolId: number, sizesGiB: number[]): Promise<number[]> {
  const db = fleet.t.database.db;
  const sp = await db
    .insertInto('storage_pools')
    .values({ pool_id: poolId, type: 'nfs', name: `nfs-${randomUUID().slice(0, 8)}` })
    .returning('id')
    .executeTakeFirstOrThrow();
  const ids: number[] = [];
  for (const size of sizesGiB) {
    const name = `vol-${randomUUID().slice(0, 8)}.img`;
    const row = await db
      .insertInto('volumes')
      .values({ storage_pool_id: sp.id, name, path: path.join(fleet.dir, 'nfs', name), size_gib: size })
      .returning('id')
      .executeTakeFirstOrThrow();
    ids.push(row.id);
  }
  return ids;
}

export async function insertImage(fleet: Fleet, name: string): Promise<number> {
  const row = await fleet.t.database.db
    .insertInto('images')
    .values({
      name,
      kernel: 'http://127.0.0.1/vmlinuz',
      initrd: 'http://127.0.0.1/initrd.img',
      cmdline: 'ks=x',
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}
