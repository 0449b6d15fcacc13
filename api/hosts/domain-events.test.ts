import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createLogger } from '../../lib/log.js';
import { createTestApp, type TestApp } from '../../lib/testing/app.js';
import { cutConnection } from '../../lib/testing/libvirt-hosts.js';
import { authHeader, createPool, createUserWithToken } from '../../lib/testing/users.js';
import { waitFor } from '../../lib/testing/wait.js';
import { LibvirtClient } from '../../libvirt/client.js';
import { HostConnections } from './driver/index.js';
import type { RpcDriver } from './driver/rpc-driver.js';

import { VM_STATE_EVENT, type VmStateEvent } from './host-events.js';
import { HostMonitor } from './host-monitor.js';

/**
 * Domain events pushed over each host's RPC connection: `virsh` outside herd suspends and resumes a domain on
 * test:///default (which the suite's test-driver libvirtd shares between its connections), and herd's VM follows
 * with the heartbeat an hour away, so only the event can have told it.
 */
const log = createLogger('silent');
const run = promisify(execFile);
const socket = process.env.HERD_LIBVIRT_TEST_SOCKET as string;
const outside = `test+unix:///default?socket=${socket}`;
const virsh = async (...args: string[]) => (await run('virsh', ['-q', '-c', outside, ...args])).stdout;

let holder: LibvirtClient;
let t: TestApp;
let dir: string;
let monitor: HostMonitor;
let hostId: number;
let vmId: number;
const connections = new HostConnections(log);
const events = new EventEmitter();
const vmEvents: VmStateEvent[] = [];
const uuid = randomUUID();
const name = `events-${uuid.slice(0, 8)}`;

const vmState = async () =>
  (await t.database.db.selectFrom('vms').select('state').where('id', '=', vmId).executeTakeFirstOrThrow())
    .state;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'herd-events-'));
  const xml = path.join(dir, 'domain.xml');
  await writeFile(
    xml,
    `<domain type='test'><name>${name}</name><uuid>${uuid}</uuid><memory unit='MiB'>256</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>`,
  );
  // libvirtd keeps test:///default while a connection holds it: this one, outside herd, for the whole file.
  holder = await LibvirtClient.connect(outside);
  await virsh('define', xml);
  await virsh('start', name);

  t = await createTestApp({ deps: { hostConnections: connections, events } });
  const db = t.database.db;
  const admin = await createUserWithToken(db, { username: 'root', superAdmin: true });
  const rack = await createPool(db, { name: 'rack' });
  const vmPool = await createPool(db, { name: 'vms', kind: 'vm', parentId: rack });
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/v1/hosts',
    headers: authHeader(admin.token),
    payload: { uri: 'test:///default', poolId: rack },
  });
  expect(res.statusCode).toBe(201);
  hostId = res.json().id;
  ({ id: vmId } = await db
    .insertInto('vms')
    .values({
      uuid,
      name,
      pool_id: vmPool,
      owner_id: admin.id,
      vcpus: 1,
      memory_mib: 256,
      host_id: hostId,
      state: 'running',
    })
    .returning('id')
    .executeTakeFirstOrThrow());
  events.on(VM_STATE_EVENT, (e: VmStateEvent) => vmEvents.push(e));
  // The heartbeat is an hour away: after the first one (at start), only events can change the VM.
  monitor = new HostMonitor({
    db,
    connections,
    log,
    events,
    intervalSeconds: 3600,
    timeoutMs: 10_000,
    domainEvents: true,
  });
  monitor.start();
  await waitFor(async () => monitor.domainEventWatch?.watched().includes('test:///default') ?? false, 15_000);
});
afterAll(async () => {
  await monitor?.stop();
  await t?.close();
  await connections.closeAll();
  await virsh('destroy', name).catch(() => undefined);
  await virsh('undefine', name).catch(() => undefined);
  await holder?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('domain events over the RPC connection', () => {
  test('virsh suspend and resume outside herd: the VM follows from the event alone', async () => {
    expect(await vmState()).toBe('running');
    await virsh('suspend', name);
    await waitFor(async () => (await vmState()) === 'paused', 10_000);
    await virsh('resume', name);
    await waitFor(async () => (await vmState()) === 'running', 10_000);
    expect(vmEvents.filter((e) => e.uuid === uuid).map((e) => [e.previous, e.state, e.hostId])).toEqual([
      ['running', 'paused', hostId],
      ['paused', 'running', hostId],
    ]);
  });

  test('after the connection is cut, the subscription is registered again and events still arrive', async () => {
    await cutConnection(await connections.get('test:///default'));
    await virsh('suspend', name);
    await waitFor(async () => (await vmState()) === 'paused', 10_000);
    await virsh('resume', name);
    await waitFor(async () => (await vmState()) === 'running', 10_000);
  });

  test('a heartbeat of a host that is up costs one libvirt call (all domains in ConnectGetAllDomainStats)', async () => {
    await monitor.tick();
    const client = (await connections.get('test:///default')) as RpcDriver;
    const sent = () => client.connection.current?.stats.callsSent ?? 0;
    const before = sent();
    const result = await monitor.tick();
    expect(result).toMatchObject({ hosts: 1, up: 1, failed: 0 });
    expect(sent() - before).toBe(1);
  });
});
