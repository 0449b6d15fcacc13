import { EventEmitter } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LiveView } from '../../ingest/live-view.js';
import { createLogger } from '../../lib/log.js';
import { createTestApp, type TestApp } from '../../lib/testing/app.js';
import { testUuid, writeTestHost } from '../../lib/testing/libvirt-hosts.js';
import { authHeader, createPool, createUserWithToken } from '../../lib/testing/users.js';
import { waitFor } from '../../lib/testing/wait.js';
import { HostConnections, type HostDriver } from './driver/index.js';
import { HOST_STATE_EVENT, type HostStateEvent, VM_STATE_EVENT, type VmStateEvent } from './host-events.js';
import { HostMonitor } from './host-monitor.js';
import { writeHostsLastSeen } from './last-seen.js';
import { applyReconciledState, idleVmsOnHost, reconciledState } from './reconcile.js';

const HEARTBEAT_S = 1;
const log = createLogger('silent');
let t: TestApp;
let dir: string;
const connections = new HostConnections(log);
const events = new EventEmitter();
const liveView = new LiveView();
const hostEvents: HostStateEvent[] = [];
const vmEvents: VmStateEvent[] = [];
let monitor: HostMonitor;
let admin: { id: number; token: string };
let vmPool: number;
let hostId: number;
let uri: string;
const vmIds: Record<string, number> = {};

async function addHost(hostUri: string, poolId: number): Promise<number> {
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/v1/hosts',
    headers: authHeader(admin.token),
    payload: { uri: hostUri, poolId },
  });
  expect(res.statusCode).toBe(201);
  return res.json().id;
}

async function hostView(id: number) {
  return (
    await t.app.inject({ method: 'GET', url: `/api/v1/hosts/${id}`, headers: authHeader(admin.token) })
  ).json();
}

async function vmState(name: string): Promise<string> {
  const row = await t.database.db
    .selectFrom('vms')
    .select('state')
    .where('id', '=', vmIds[name])
    .executeTakeFirstOrThrow();
  return row.state;
}

/**
 * A heartbeat of its own on the same hosts, whose drivers have one call replaced (`replace` gets the real driver):
 * to put something between libvirt's answer and its use, or to have libvirt not answer.
 */
function monitorReplacing<K extends keyof HostDriver>(
  call: K,
  replace: (driver: HostDriver) => HostDriver[K],
  timeoutMs = 10_000,
): HostMonitor {
  const replaced = {
    get: async (hostUri: string) => {
      const driver = await connections.get(hostUri);
      return new Proxy(driver, {
        get: (target, prop, receiver) =>
          prop === call ? replace(driver) : Reflect.get(target, prop, receiver),
      });
    },
    drop: async () => undefined,
  } as unknown as HostConnections;
  return new HostMonitor({
    db: t.database.db,
    connections: replaced,
    log,
    intervalSeconds: HEARTBEAT_S,
    timeoutMs,
  });
}

beforeAll(async () => {
  t = await createTestApp({ deps: { hostConnections: connections, events, liveView } });
  dir = await mkdtemp(path.join(tmpdir(), 'herd-monitor-'));
  const db = t.database.db;
  admin = await createUserWithToken(db, { username: 'root', superAdmin: true });
  const rack = await createPool(db, { name: 'rack' });
  vmPool = await createPool(db, { name: 'vms', kind: 'vm', parentId: rack });
  uri = await writeTestHost(dir, {
    name: 'node1',
    cpus: 8,
    memoryMiB: 16384,
    domains: [
      { name: 'web' },
      { name: 'db' },
      { name: 'batch' },
      { name: 'busy' },
      { name: 'cold', state: 'shutoff' },
    ],
  });
  hostId = await addHost(uri, rack);
  // herd's records of the same domains, with states that are a heartbeat away from being corrected.
  for (const [name, state] of [
    ['web', 'running'],
    ['db', 'running'],
    ['batch', 'starting'], // a task died half-way: libvirt says running
    ['busy', 'running'], // a task is acting on it: hands off
    ['cold', 'shutoff'],
    ['ghost', 'shutoff'], // no such domain on the host
  ] as const) {
    const { id } = await db
      .insertInto('vms')
      .values({
        uuid: testUuid(`node1/${name}`),
        name,
        pool_id: vmPool,
        owner_id: admin.id,
        vcpus: 1,
        memory_mib: 512,
        host_id: hostId,
        state,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    vmIds[name] = id;
  }
  await db
    .insertInto('tasks')
    .values({
      user_id: admin.id,
      action: 'shutdown',
      target_type: 'vm',
      target_id: vmIds.busy,
      state: 'running',
    })
    .execute();

  events.on(HOST_STATE_EVENT, (e: HostStateEvent) => hostEvents.push(e));
  events.on(VM_STATE_EVENT, (e: VmStateEvent) => vmEvents.push(e));
  // A generous answer timeout: a loaded machine must not turn a slow heartbeat into a failed one.
  monitor = new HostMonitor({
    db,
    connections,
    log,
    liveView,
    events,
    intervalSeconds: HEARTBEAT_S,
    timeoutMs: 10_000,
  });
  monitor.start();
});
afterAll(async () => {
  await monitor.stop();
  await t.close();
  await connections.closeAll();
  await rm(dir, { recursive: true, force: true });
});

describe('heartbeat and reconciliation', () => {
  test('the first heartbeat marks the host up and corrects what libvirt contradicts', async () => {
    // The periodic loop (started in beforeAll) does it on its own.
    await waitFor(async () => (await hostView(hostId)).state === 'up', 15_000);
    await waitFor(async () => (await vmState('ghost')) === 'unknown', 15_000);
    expect(await vmState('batch')).toBe('running');
    expect(await vmState('web')).toBe('running');
    expect(await vmState('cold')).toBe('shutoff');
    const host = await hostView(hostId);
    expect(host.heartbeatError).toBeNull();
    expect(Date.parse(host.heartbeatAt)).toBeGreaterThan(Date.now() - 5000);
    expect(vmEvents).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          vmId: vmIds.ghost,
          state: 'unknown',
          previous: 'shutoff',
          reason: 'reconcile',
        }),
        expect.objectContaining({ vmId: vmIds.batch, state: 'running', previous: 'starting' }),
      ]),
    );
  });

  test('a domain paused or stopped outside herd shows up at the next heartbeat', async () => {
    // From here on heartbeats are run one at a time, so "the next heartbeat" is exact whatever the load.
    await monitor.stop();
    const driver = await connections.get(uri);
    await driver.suspend(testUuid('node1/web'));
    await driver.destroy(testUuid('node1/db'));
    await driver.destroy(testUuid('node1/busy'));
    const result = await monitor.tick();
    expect(result).toMatchObject({ hosts: 1, up: 1, failed: 0, vmChanges: 2 });
    const vms = (await hostView(hostId)).vms as Array<{ name: string; state: string }>;
    const state = Object.fromEntries(vms.map((v) => [v.name, v.state]));
    expect(state).toMatchObject({ web: 'paused', db: 'shutoff' });
    // The VM a task is working on is the task's business.
    expect(state.busy).toBe('running');
  });

  test('a domain that comes back is picked up again', async () => {
    const driver = await connections.get(uri);
    await driver.resume(testUuid('node1/web'));
    await monitor.tick();
    expect(await vmState('web')).toBe('running');
  });

  test('a VM that changed while libvirt was being asked is not corrected from the older domain list', async () => {
    // The domain list is taken, then herd starts the VM (as a start task does), then the list is used. herd's VMs
    // are read before libvirt is asked, so the start is not undone from the list taken before it.
    const uuid = testUuid('node1/cold');
    const racingMonitor = monitorReplacing('listDomains', (driver) => async () => {
      const domains = await driver.listDomains();
      await driver.start(uuid);
      await t.database.db
        .updateTable('vms')
        .set({ state: 'running', state_changed_at: sql`now()` })
        .where('id', '=', vmIds.cold)
        .execute();
      return domains;
    });
    expect(await vmState('cold')).toBe('shutoff');
    await racingMonitor.tick();
    expect(await vmState('cold')).toBe('running');

    // And the next heartbeat corrects from what libvirt says then (stopped outside herd here: back as it was).
    await (await connections.get(uri)).destroy(uuid);
    await monitor.tick();
    expect(await vmState('cold')).toBe('shutoff');
  });

  test('a correction is not applied to a VM whose state changed since it was read, even back to the same', async () => {
    const db = t.database.db;
    const [seen] = (await idleVmsOnHost(db, hostId)).filter((vm) => vm.id === vmIds.web);
    expect(seen.state).toBe('running');
    for (const state of ['stopping', 'running']) {
      await db
        .updateTable('vms')
        .set({ state, state_changed_at: sql`now()` })
        .where('id', '=', vmIds.web)
        .execute();
    }
    expect(await applyReconciledState(db, seen, hostId, 'paused')).toBe(false);
    expect(await vmState('web')).toBe('running');
    const [now] = (await idleVmsOnHost(db, hostId)).filter((vm) => vm.id === vmIds.web);
    expect(await applyReconciledState(db, now, hostId, 'running')).toBe(true);
  });

  test('a heartbeat libvirt does not answer in time names the call it is waiting for', async () => {
    const stuck = monitorReplacing('listDomains', () => () => new Promise<never>(() => undefined), 200);
    await stuck.tick();
    expect((await hostView(hostId)).heartbeatError).toBe(
      'no answer from libvirt within 0.2 s (waiting for the domain list)',
    );
    await stuck.tick();
    expect((await hostView(hostId)).heartbeatError).toBe(
      'no answer from libvirt within 0.2 s (waiting for the domain list; previous heartbeat still pending)',
    );
    await monitor.tick();
    expect(await hostView(hostId)).toMatchObject({ state: 'up', heartbeatError: null });
  });

  test('the reconciliation rules', () => {
    expect(reconciledState('running', 'running')).toBeNull();
    expect(reconciledState('running', 'crashed')).toBe('crashed');
    expect(reconciledState('saved', 'shutoff')).toBeNull();
    expect(reconciledState('defined', 'shutoff')).toBeNull();
    expect(reconciledState('stopping', 'shutoff')).toBe('shutoff');
    expect(reconciledState('saved', undefined)).toBeNull();
    expect(reconciledState('running', undefined)).toBe('unknown');
    expect(reconciledState('unknown', 'running')).toBe('running');
    expect(reconciledState('running', 'unknown')).toBeNull();
  });
});

describe('host state from heartbeat and collectd', () => {
  test('a host whose libvirt stops answering turns unreachable without collectd, down with it', async () => {
    const uriLost = await writeTestHost(dir, { name: 'lost', cpus: 2, memoryMiB: 2048 });
    const uriQuiet = await writeTestHost(dir, { name: 'quiet', cpus: 2, memoryMiB: 2048 });
    const rack = (await hostView(hostId)).poolId;
    const lost = await addHost(uriLost, rack);
    const quiet = await addHost(uriQuiet, rack);
    await monitor.tick();
    expect((await hostView(lost)).state).toBe('up');
    expect((await hostView(quiet)).state).toBe('up');

    // collectd still hears from "quiet"; nothing from "lost".
    const feed = () =>
      liveView.update(
        {
          host: 'quiet',
          plugin: 'load',
          pluginInstance: '',
          type: 'load',
          typeInstance: '',
          time: Date.now() / 1000,
          // Silent after 3 intervals: long enough for the tick below on a loaded machine.
          interval: 10,
          dsTypes: ['gauge', 'gauge', 'gauge'],
          values: [0.1, 0.1, 0.1],
        },
        ['shortterm', 'midterm', 'longterm'],
      );
    // Their libvirt goes away: the file behind the fake host is gone, the connection closed.
    await rm(path.join(dir, 'lost.xml'));
    await rm(path.join(dir, 'quiet.xml'));
    await connections.drop(uriLost);
    await connections.drop(uriQuiet);
    feed();
    await monitor.tick();
    expect((await hostView(lost)).state).toBe('unreachable');
    expect((await hostView(quiet)).state).toBe('down');
    const lostView = await hostView(lost);
    expect(lostView.heartbeatError).toMatch(/cannot connect/);
    expect(lostView.collectd.silent).toBe(true);
    expect((await hostView(quiet)).collectd.silent).toBe(false);
    expect(hostEvents).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ hostId: lost, state: 'unreachable', previous: 'up', collectdSilent: true }),
        expect.objectContaining({ hostId: quiet, state: 'down', previous: 'up', collectdSilent: false }),
      ]),
    );
  });
});

describe('a host monitor without a live view (ingest in another process)', () => {
  test('reads collectd last-seen times that the ingest process wrote to the hosts table', async () => {
    const db = t.database.db;
    liveView.update(
      {
        host: 'node1',
        plugin: 'memory',
        pluginInstance: '',
        type: 'memory',
        typeInstance: 'free',
        time: Date.now() / 1000,
        interval: 10,
        dsTypes: ['gauge'],
        values: [1024 * 1024 * 1024],
      },
      ['value'],
    );
    expect(await writeHostsLastSeen(db, liveView)).toBeGreaterThanOrEqual(1);
    const seen = await db
      .selectFrom('hosts')
      .select('last_seen_at')
      .where('id', '=', hostId)
      .executeTakeFirstOrThrow();
    expect(seen.last_seen_at!.getTime()).toBeGreaterThan(Date.now() - 5000);

    const events2 = new EventEmitter();
    const changes: HostStateEvent[] = [];
    events2.on(HOST_STATE_EVENT, (e: HostStateEvent) => changes.push(e));
    const blind = new HostMonitor({ db, connections, log, events: events2, intervalSeconds: 60 });
    await blind.tick();
    await blind.tick();
    // Up, and not flagged silent: no change to announce.
    expect(changes.filter((e) => e.hostId === hostId)).toEqual([]);
    expect((await hostView(hostId)).state).toBe('up');
  });
});
