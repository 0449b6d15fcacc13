import { EventEmitter } from 'node:events';
import { sql } from 'kysely';
import { io as connect, type Socket } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { collectdLoop } from '../../api/alerts/test-support.js';
import { authRoutes } from '../../api/auth/auth.routes.js';
import { VM_STATE_EVENT, type VmStateEvent } from '../../api/hosts/host-events.js';
import { LiveView } from '../../ingest/live-view.js';
import { replayAt } from '../../ingest/protocol/test-fixtures.js';
import { createLogger } from '../../lib/log.js';
import { createTestApp, type TestApp } from '../../lib/testing/app.js';
import { insertHost, insertVm } from '../../lib/testing/fleet.js';
import { createPool, createUserWithToken, grantRole } from '../../lib/testing/users.js';
import { waitFor } from '../../lib/testing/wait.js';
import { attachLive, LIVE_EVENT } from './live.js';
import { serveDashboardFiles } from './static.js';

let t: TestApp;
let url: string;
const events = new EventEmitter();
const liveView = new LiveView();
const ids = { rack: 0, team: 0, host: 0, vmA: 0, vmB: 0, otherRack: 0 };
const users = {
  owner: { id: 0, token: '' },
  neighbour: { id: 0, token: '' },
  monitor: { id: 0, token: '' },
  stranger: { id: 0, token: '' },
};
const sockets: Socket[] = [];

beforeAll(async () => {
  t = await createTestApp({
    routes: [
      authRoutes,
      async (app, deps) => {
        await serveDashboardFiles(app);
        attachLive(app, {
          db: deps.db,
          log: deps.log,
          liveView,
          events,
          watchMs: 100,
          // The periodic push of every figure is out of the way: figures must come with their packets.
          metricsMs: 600_000,
          pushMs: 100,
          recheckMs: 300,
        });
      },
    ],
  });
  const db = t.database.db;
  ids.rack = await createPool(db, { name: 'rack' });
  ids.otherRack = await createPool(db, { name: 'other rack' });
  ids.team = await createPool(db, { name: 'team', kind: 'vm', parentId: ids.rack });
  ids.host = await insertHost(db, { poolId: ids.rack, cpus: 4, memoryMiB: 8192, hostname: 'live-host' });
  users.owner = await createUserWithToken(db, { username: 'owner' });
  users.neighbour = await createUserWithToken(db, { username: 'neighbour' });
  users.monitor = await createUserWithToken(db, { username: 'monitor' });
  users.stranger = await createUserWithToken(db, { username: 'stranger' });
  await grantRole(db, ids.team, users.owner.id, 'user');
  await grantRole(db, ids.team, users.neighbour.id, 'user');
  await grantRole(db, ids.rack, users.monitor.id, 'monitor');
  await grantRole(db, ids.otherRack, users.stranger.id, 'admin');
  ids.vmA = await insertVm(db, { poolId: ids.team, ownerId: users.owner.id, name: 'vm-a' });
  ids.vmB = await insertVm(db, { poolId: ids.team, ownerId: users.neighbour.id, name: 'vm-b' });
  url = await t.app.listen({ host: '127.0.0.1', port: 0 });
});
afterEach(() => {
  for (const s of sockets.splice(0)) s.disconnect();
});
afterAll(() => t.close());

/** A connected socket recording every event it receives. */
async function open(auth: { token?: string; cookie?: string; origin?: string }) {
  const received: Array<[string, any]> = [];
  const socket = connect(url, {
    transports: ['websocket'],
    reconnection: false,
    auth: auth.token ? { token: auth.token } : {},
    extraHeaders: {
      ...(auth.cookie ? { cookie: auth.cookie } : {}),
      ...(auth.origin ? { origin: auth.origin } : {}),
    },
  });
  sockets.push(socket);
  socket.onAny((event, data) => received.push([event, data]));
  const outcome = await new Promise<'ready' | string>((resolve) => {
    socket.on('ready', () => resolve('ready'));
    socket.on('connect_error', (err) => resolve(err.message));
  });
  return {
    socket,
    received,
    outcome,
    of: (event: string) => received.filter(([e]) => e === event).map(([, d]) => d),
  };
}

async function setVmState(id: number, state: string) {
  await t.database.db
    .updateTable('vms')
    .set({ state, state_changed_at: sql`now()` })
    .where('id', '=', id)
    .execute();
}

describe('authentication', () => {
  test('a socket without credentials, or with bad ones, is refused', async () => {
    expect((await open({})).outcome).toBe('unauthorized');
    expect((await open({ token: 'nope' })).outcome).toBe('unauthorized');
  });

  test('the session cookie works from the same origin only', async () => {
    const cookie = `herd_session=${users.owner.token}`;
    expect((await open({ cookie, origin: url })).outcome).toBe('ready');
    expect((await open({ cookie, origin: 'https://evil.example' })).outcome).toBe('unauthorized');
    // Origin: null (a sandboxed frame, a file: page) and what is no URL are foreign too: a clean refusal, no
    // unhandled rejection, and the server goes on serving.
    const unhandled: unknown[] = [];
    const record = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', record);
    try {
      for (const origin of ['null', 'not a url', 'https://evil.example'])
        expect((await open({ cookie, origin })).outcome, origin).toBe('unauthorized');
      expect((await open({ token: users.owner.token, origin: 'null' })).outcome).toBe('ready');
      expect((await open({ cookie, origin: url })).outcome).toBe('ready');
    } finally {
      process.off('unhandledRejection', record);
    }
    expect(unhandled).toEqual([]);
  });

  test('a revoked credential is disconnected', async () => {
    const user = await createUserWithToken(t.database.db, { username: 'leaving' });
    const s = await open({ token: user.token });
    expect(s.outcome).toBe('ready');
    await t.database.db
      .updateTable('sessions')
      .set({ revoked_at: sql`now()` })
      .where('user_id', '=', user.id)
      .execute();
    await waitFor(() => !s.socket.connected, 5000);
  });
});

describe('each user hears only about what it may see', () => {
  test('a VM state change reaches its owner and the pool monitor, not another user of the pool', async () => {
    const [owner, neighbour, monitor, stranger] = await Promise.all(
      [users.owner, users.neighbour, users.monitor, users.stranger].map((u) => open({ token: u.token })),
    );
    await setVmState(ids.vmA, 'running');
    await waitFor(() => owner.of('vm').some((v) => v.id === ids.vmA && v.state === 'running'), 5000);
    await waitFor(() => monitor.of('vm').some((v) => v.id === ids.vmA), 5000);
    await setVmState(ids.vmB, 'paused');
    await waitFor(() => neighbour.of('vm').some((v) => v.id === ids.vmB && v.state === 'paused'), 5000);
    expect(neighbour.of('vm').some((v) => v.id === ids.vmA)).toBe(false);
    expect(owner.of('vm').some((v) => v.id === ids.vmB)).toBe(false);
    expect(stranger.of('vm')).toEqual([]);
  });

  test('tasks follow their target; changes announced in this process go out at once, once', async () => {
    const [owner, neighbour] = await Promise.all([
      open({ token: users.owner.token }),
      open({ token: users.neighbour.token }),
    ]);
    const { id: taskId } = await t.database.db
      .insertInto('tasks')
      .values({
        user_id: users.owner.id,
        action: 'start',
        target_type: 'vm',
        target_id: ids.vmA,
        args: '{}',
        pool_id: ids.team,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    await waitFor(() => owner.of('task').some((x) => x.id === taskId && x.state === 'queued'), 5000);
    await t.database.db
      .updateTable('tasks')
      .set({ state: 'running', progress: 0.5 })
      .where('id', '=', taskId)
      .execute();
    await waitFor(() => owner.of('task').some((x) => x.id === taskId && x.progress === 0.5), 5000);

    const announced: VmStateEvent = {
      vmId: ids.vmA,
      uuid: 'x',
      name: 'vm-a',
      poolId: ids.team,
      hostId: null,
      state: 'crashed',
      previous: 'running',
      reason: 'reconcile',
      at: new Date().toISOString(),
    };
    const before = owner.of('vm').length;
    events.emit(VM_STATE_EVENT, announced);
    await waitFor(() => owner.of('vm').length > before, 1000);
    await setVmState(ids.vmA, 'crashed');
    await new Promise((r) => setTimeout(r, 500));
    expect(owner.of('vm').filter((v) => v.state === 'crashed')).toHaveLength(1);
    expect(neighbour.of('task')).toEqual([]);
  });

  test('collectd notifications arrive as they are stored, to who sees their host or VM', async () => {
    const db = t.database.db;
    const hostId = await insertHost(db, {
      poolId: ids.rack,
      cpus: 2,
      memoryMiB: 4096,
      hostname: 'notif-host',
    });
    const [owner, neighbour, monitor, stranger] = await Promise.all(
      [users.owner, users.neighbour, users.monitor, users.stranger].map((u) => open({ token: u.token })),
    );
    const loop = await collectdLoop(Date.now, createLogger('silent'), { db });
    try {
      const replay = replayAt('notifications');
      const notes = replay.expected.filter((r) => r.kind === 'notification');
      await loop.sendPackets(replay.packets.map((p) => p.bytes));
      await waitFor(
        () => monitor.of('event').filter((e) => e.hostId === hostId).length === notes.length,
        5000,
      );
      expect(
        monitor
          .of('event')
          .map((e) => `${e.severity}|${e.message}`)
          .sort(),
      ).toEqual(notes.map((r) => `${r.severity_name.toLowerCase()}|${r.message}`).sort());
      const { uuid } = await db
        .selectFrom('vms')
        .select('uuid')
        .where('id', '=', ids.vmA)
        .executeTakeFirstOrThrow();
      await loop.notify({
        host: uuid,
        plugin: 'virt',
        pluginInstance: '',
        type: 'file_system',
        typeInstance: '',
        time: Date.now() / 1000,
        severity: 1,
        message: 'guest trouble',
      });
      await waitFor(() => owner.of('event').some((e) => e.vmId === ids.vmA), 5000);
      await waitFor(() => monitor.of('event').some((e) => e.vmId === ids.vmA), 5000);
      await new Promise((r) => setTimeout(r, 300));
      // each once; the host's to its pool, the guest's to who sees the VM
      expect(monitor.of('event')).toHaveLength(notes.length + 1);
      expect(owner.of('event').map((e) => e.message)).toEqual(['guest trouble']);
      expect(neighbour.of('event')).toEqual([]);
      expect(stranger.of('event')).toEqual([]);
    } finally {
      await loop.close();
    }
  });

  test('live figures of a host reach who sees its pool; publications reach their rooms', async () => {
    const [monitor, stranger] = await Promise.all([
      open({ token: users.monitor.token }),
      open({ token: users.stranger.token }),
    ]);
    for (const time of [100, 110]) {
      liveView.update(
        {
          host: 'live-host',
          plugin: 'load',
          pluginInstance: '',
          type: 'load',
          typeInstance: '',
          time,
          interval: 10,
          dsTypes: ['gauge', 'gauge', 'gauge'],
          values: [2, 1, 0.5],
        },
        ['shortterm', 'midterm', 'longterm'],
      );
    }
    // Pushed when its values land (the periodic push of everything is 10 minutes away), with only what changed.
    await waitFor(() => monitor.of('metrics').some((m) => m.hosts[ids.host]?.load1 === 2), 5000);
    for (const m of monitor.of('metrics')) {
      expect(Object.keys(m.hosts)).toEqual([String(ids.host)]);
      expect(m.vms).toEqual({});
    }
    events.emit(LIVE_EVENT, { name: 'alert', poolId: ids.rack, data: { subject: 'live-host' } });
    await waitFor(() => monitor.of('alert').length === 1, 2000);
    expect(stranger.of('metrics').some((m) => m.hosts[ids.host])).toBe(false);
    expect(stranger.of('alert')).toEqual([]);
  });

  test("a VM's first sample has no rate: its network figure is unknown (null), not a zero", async () => {
    const owner = await open({ token: users.owner.token });
    await setVmState(ids.vmA, 'running');
    await waitFor(() => owner.of('vm').some((v) => v.id === ids.vmA && v.state === 'running'), 5000);
    const { uuid } = await t.database.db
      .selectFrom('vms')
      .select('uuid')
      .where('id', '=', ids.vmA)
      .executeTakeFirstOrThrow();
    const sample = (time: number, octets: number) =>
      liveView.update(
        {
          host: uuid,
          plugin: 'virt',
          pluginInstance: '',
          type: 'if_octets',
          typeInstance: 'vnet0',
          time,
          interval: 10,
          dsTypes: ['derive', 'derive'],
          values: [octets, octets],
        },
        ['rx', 'tx'],
      );
    const figures = () => owner.of('metrics').flatMap((m) => (m.vms[ids.vmA] ? [m.vms[ids.vmA]] : []));
    sample(100, 0);
    await waitFor(() => figures().length > 0, 5000);
    expect(figures()[0].netBytesPerSec).toBeNull();
    sample(110, 1000);
    await waitFor(() => figures().some((f) => f.netBytesPerSec === 200), 5000);
  });
});

test('the dashboard files are served without authentication', async () => {
  const index = await fetch(`${url}/`);
  expect(index.status).toBe(200);
  expect(await index.text()).toContain('/app/main.js');
  // Bodies read to the end: a response left half-read keeps its connection busy, and the server's close waits
  // for it (70 s here).
  const vega = await fetch(`${url}/vendor/vega-embed.min.js`);
  expect(vega.status).toBe(200);
  expect((await vega.text()).length).toBeGreaterThan(1000);
  const other = await fetch(`${url}/vendor/other.js`);
  expect(other.status).toBe(404);
  await other.body?.cancel();
  const io = await fetch(`${url}/socket.io/socket.io.min.js`);
  expect(io.status).toBe(200);
  expect(await io.text()).toContain('io');
});
