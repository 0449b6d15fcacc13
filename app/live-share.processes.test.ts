import dgram from 'node:dgram';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { encodeValueLists } from '../ingest/protocol/encoder.js';
import type { ValueList } from '../ingest/types.js';
import { createTestDatabase } from '../lib/testing/db.js';
import {
  apiCall,
  type HerdProcess,
  type HerdRole,
  startHerdProcess,
  stopHerdProcess,
} from '../lib/testing/herd-process.js';
import { writeTestHost } from '../lib/testing/libvirt-hosts.js';
import { createPool, createUserWithToken } from '../lib/testing/users.js';
import { waitFor } from '../lib/testing/wait.js';
import type { DatabaseHandle } from '../schema/db.js';

/**
 * Two of every role on one database, as the built command line runs them: `--only ingest` ×2 (each hears one of
 * the two hosts), `--only api` ×2, `--only worker` ×2. A start decided by an API process uses the load the ingest
 * process saw, shared through PostgreSQL (ingest/live-share.ts).
 */
/** The hosts' collectd interval (s), the ingest processes' publish period and the readers' period (ms). */
const INTERVAL_S = 2;
const PUBLISH_MS = 500;
const READ_MS = 1_000;
const MiB = 1024 * 1024;
const VM_MEMORY_MIB = 1024;

let dir: string;
let database: DatabaseHandle;
const herds: HerdProcess[] = [];
let sender: dgram.Socket | undefined;
let ticker: NodeJS.Timeout | undefined;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'herd-liveshare-'));
  database = await createTestDatabase();
});
afterAll(async () => {
  clearInterval(ticker);
  sender?.close();
  await Promise.all(herds.map((h) => stopHerdProcess(h)));
  await database.close();
  await rm(dir, { recursive: true, force: true });
});

/** `herd serve --only <role>` on the test database; resolves once it says it is ready. */
async function herd(role: HerdRole, n: number): Promise<HerdProcess> {
  const h = await startHerdProcess(role, {
    DATABASE_URL: database.url,
    INFLUX_URL: '',
    HERD_DATA_DIR: path.join(dir, `${role}-${n}`),
    HERD_HTTP_HOST: '127.0.0.1',
    HERD_HTTP_PORT: '0',
    HERD_COLLECTD_HOST: '127.0.0.1',
    HERD_COLLECTD_PORT: '0',
    HERD_LIVE_PUBLISH_MS: String(PUBLISH_MS),
    HERD_HEARTBEAT_SECONDS: '1',
    HERD_SAVE_DIR: path.join(dir, 'save'),
  });
  herds.push(h);
  return h;
}

/** One interval of a host's collectd traffic: load and memory as the load and memory plugins send them. */
function packets(host: string, figures: { load1: number; freeMiB: number }): Buffer[] {
  const base = { host, pluginInstance: '', time: Date.now() / 1000, interval: INTERVAL_S };
  const lists: ValueList[] = [
    {
      ...base,
      plugin: 'load',
      type: 'load',
      typeInstance: '',
      dsTypes: ['gauge', 'gauge', 'gauge'],
      values: [figures.load1, figures.load1, figures.load1],
    },
    {
      ...base,
      plugin: 'memory',
      type: 'memory',
      typeInstance: 'free',
      dsTypes: ['gauge'],
      values: [figures.freeMiB * MiB],
    },
    {
      ...base,
      plugin: 'memory',
      type: 'memory',
      typeInstance: 'used',
      dsTypes: ['gauge'],
      values: [(16384 - figures.freeMiB) * MiB],
    },
  ];
  return encodeValueLists(lists);
}

test('an --only api process places VMs from the live usage an --only ingest process saw, and follows it when it changes', async () => {
  const db = database.db;
  const admin = await createUserWithToken(db, { username: 'liveshare-root', superAdmin: true });
  const rack = await createPool(db, { name: 'rack' });
  await db.updateTable('pools').set({ placement_policy: 'load' }).where('id', '=', rack).execute();
  const team = await createPool(db, { name: 'team', kind: 'vm', parentId: rack });
  const uris = {
    a: await writeTestHost(dir, { name: 'ls-host-a', cpus: 8, memoryMiB: 16384 }),
    b: await writeTestHost(dir, { name: 'ls-host-b', cpus: 8, memoryMiB: 16384 }),
  };

  // The first process alone, then the rest together (their migrations then find the lock table made).
  const ingest1 = await herd('ingest', 1);
  const [ingest2, api1, api2] = await Promise.all([
    herd('ingest', 2),
    herd('api', 1),
    herd('api', 2),
    herd('worker', 1),
    herd('worker', 2),
  ]);
  const call = (h: HerdProcess, method: string, url: string, body?: unknown) =>
    apiCall(h.http!, admin.token, method, url, body);

  const hostA = await call(api1, 'POST', '/api/v1/hosts', { uri: uris.a, poolId: rack });
  const hostB = await call(api1, 'POST', '/api/v1/hosts', { uri: uris.b, poolId: rack });
  expect(hostA.status, JSON.stringify(hostA.body)).toBe(201);
  expect(hostB.status).toBe(201);
  const [a, b] = [hostA.body.id as number, hostB.body.id as number];

  // Host A's collectd goes to ingest 1, host B's to ingest 2, every interval.
  const loaded = { load1: 24, freeMiB: 512 };
  const idle = { load1: 0.4, freeMiB: 12000 };
  const now = { a: loaded, b: idle };
  const socket = dgram.createSocket('udp4');
  sender = socket;
  const send = () => {
    for (const p of packets('ls-host-a', now.a)) socket.send(p, ingest1.udpPort!, '127.0.0.1');
    for (const p of packets('ls-host-b', now.b)) socket.send(p, ingest2.udpPort!, '127.0.0.1');
  };
  send();
  ticker = setInterval(send, INTERVAL_S * 1000);

  // The host pages of an API process with no live view of its own show what each ingest process heard.
  await waitFor(async () => {
    const [ha, hb] = [
      await call(api2, 'GET', `/api/v1/hosts/${a}`),
      await call(api2, 'GET', `/api/v1/hosts/${b}`),
    ];
    return ha.body.live?.load1 === loaded.load1 && hb.body.live?.load1 === idle.load1;
  }, 15_000);
  const pageA = await call(api2, 'GET', `/api/v1/hosts/${a}`);
  expect(pageA.body.live).toMatchObject({ load1: 24, memoryFreeMiB: 512, memoryUsedMiB: 16384 - 512 });
  expect(pageA.body.collectd).toMatchObject({ interval: INTERVAL_S, silent: false });
  const published = await db.selectFrom('live_host_summaries').selectAll().orderBy('hostname').execute();
  expect(published.map((r) => r.hostname)).toEqual(['ls-host-a', 'ls-host-b']);
  expect(published[0].publisher).not.toBe(published[1].publisher);

  const vm = async (name: string) => {
    const res = await call(api2, 'POST', '/api/v1/vms', {
      name,
      poolId: team,
      vcpus: 1,
      memoryMiB: VM_MEMORY_MIB,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.id as number;
  };
  const [vm1, vm2] = [await vm('first'), await vm('second')];
  const start = async (h: HerdProcess, id: number) => {
    const res = await call(h, 'POST', `/api/v1/vms/${id}/actions`, { action: 'start' });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    return res.body.taskId as number;
  };
  const done = async (taskId: number) => {
    await waitFor(
      async () =>
        ['done', 'failed'].includes((await call(api1, 'GET', `/api/v1/tasks/${taskId}`)).body.state),
      20_000,
    );
    return (await call(api1, 'GET', `/api/v1/tasks/${taskId}`)).body;
  };
  /** The stored decision names the loaded host's free memory as ingest saw it; the idle host's score is its load. */
  const expectDecision = async (id: number, chosen: number, filtered: number, filteredFree: number) => {
    const { body } = await call(api2, 'GET', `/api/v1/vms/${id}/placement`);
    expect(body.last).toMatchObject({ action: 'start', policy: 'load', chosenHostId: chosen });
    const byId = new Map(body.last.candidates.map((c: any) => [c.hostId, c]));
    expect(byId.get(filtered)).toMatchObject({
      eligible: false,
      reasons: [`live usage: ${filteredFree} MiB free now < ${VM_MEMORY_MIB} MiB requested`],
    });
    // load policy: 1 − (load1 / CPUs, capped at 2) / 2; a host without live figures would score below 0.
    expect(byId.get(chosen)).toMatchObject({ eligible: true, rank: 1, score: 1 - idle.load1 / 8 / 2 });
  };

  const task1 = await start(api2, vm1);
  await expectDecision(vm1, b, a, loaded.freeMiB);
  expect(await done(task1)).toMatchObject({ state: 'done' });
  // (Only the host: each worker process has its own libvirt test-driver connection, a fake host of its own, so
  // the other worker's heartbeat may find the domain missing and mark the VM unknown.)
  expect((await call(api1, 'GET', `/api/v1/vms/${vm1}`)).body).toMatchObject({ hostId: b });

  // The loads swap: placement in the API process follows within an interval plus the publish and read periods.
  const swapped = Date.now();
  now.a = idle;
  now.b = loaded;
  await waitFor(
    async () =>
      (await call(api2, 'GET', `/api/v1/vms/${vm2}/placement`)).body.hypothetical.chosenHostId === a,
    15_000,
    50,
  );
  const followedMs = Date.now() - swapped;
  expect(followedMs).toBeLessThan(INTERVAL_S * 1000 + PUBLISH_MS + READ_MS + 1_500);
  const task2 = await start(api2, vm2);
  await expectDecision(vm2, a, b, loaded.freeMiB);
  expect(await done(task2)).toMatchObject({ state: 'done' });
  expect((await call(api1, 'GET', `/api/v1/vms/${vm2}`)).body).toMatchObject({ hostId: a });

  // Each task ran once, to its end, by one of the workers (a task moves queued → running for one worker only).
  const tasks = await db
    .selectFrom('tasks')
    .select(['id', 'state', 'worker_id', 'error'])
    .orderBy('id')
    .execute();
  expect(tasks).toMatchObject([
    { id: task1, state: 'done', worker_id: expect.stringMatching(/^herd-worker-/), error: null },
    { id: task2, state: 'done', worker_id: expect.stringMatching(/^herd-worker-/), error: null },
  ]);
  expect(herds.flatMap((h) => h.log).filter((l) => /"level":(50|60)/.test(l))).toEqual([]);
  console.log(`live share: the API's placement followed the swapped loads ${followedMs} ms after the swap`);
}, 120_000);
