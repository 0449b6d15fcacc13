import dgram from 'node:dgram';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { encodeValueLists } from '../../ingest/protocol/encoder.js';
import { createTestDatabase, testInflux } from '../../lib/testing/db.js';
import {
  apiCall,
  type HerdProcess,
  type HerdRole,
  startHerdProcess,
  stopHerdProcess,
} from '../../lib/testing/herd-process.js';
import { writeTestHost } from '../../lib/testing/libvirt-hosts.js';
import { createUserWithToken } from '../../lib/testing/users.js';
import { waitFor } from '../../lib/testing/wait.js';
import type { DatabaseHandle } from '../../schema/db.js';
import { webhookReceiver } from './test-support.js';

/**
 * Alert state across a restart of every herd process: `--only ingest` (it evaluates rules on live figures),
 * `--only api` and `--only worker` (it evaluates and sends too) on one PostgreSQL and one InfluxDB, the hosts'
 * collectd traffic over UDP, notifications to a webhook on 127.0.0.1. Every process is SIGTERMed and started again
 * while one host's alert is pending and another's firing; later the evaluating processes are SIGKILLed with an
 * alert firing.
 */
const INTERVAL_S = 2;
const PENDING_S = 15;
const THRESHOLD = 10;
const BUSY = 20;
const IDLE = 0.5;

let dir: string;
let database: DatabaseHandle;
const running = new Map<HerdRole, HerdProcess>();
let sender: dgram.Socket | undefined;
let ticker: NodeJS.Timeout | undefined;
let receiver: Awaited<ReturnType<typeof webhookReceiver>>;
/** The ingest process's collectd port: kept across its restarts, as a deployment's is. */
let udpPort = 0;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'herd-alert-restart-'));
  database = await createTestDatabase();
  receiver = await webhookReceiver();
});
afterAll(async () => {
  clearInterval(ticker);
  sender?.close();
  await Promise.all([...running.values()].map((h) => stopHerdProcess(h)));
  await receiver?.close();
  await database.close();
  await rm(dir, { recursive: true, force: true });
});

const influx = testInflux();

async function start(role: HerdRole): Promise<HerdProcess> {
  const h = await startHerdProcess(role, {
    DATABASE_URL: database.url,
    INFLUX_URL: influx.url,
    INFLUX_DB: influx.db,
    HERD_DATA_DIR: path.join(dir, role),
    HERD_HTTP_HOST: '127.0.0.1',
    HERD_HTTP_PORT: '0',
    HERD_COLLECTD_HOST: '127.0.0.1',
    HERD_COLLECTD_PORT: String(udpPort),
    HERD_ALERT_EVALUATE_SECONDS: '1',
    HERD_WEBHOOK_ALLOW: '127.0.0.1',
    HERD_LIVE_PUBLISH_MS: '500',
    HERD_SAVE_DIR: path.join(dir, 'save'),
  });
  if (role === 'ingest') udpPort = h.udpPort!;
  running.set(role, h);
  return h;
}

/** One interval of a host's load as collectd's load plugin sends it. */
function loadPackets(host: string, load: number): Buffer[] {
  return encodeValueLists([
    {
      host,
      plugin: 'load',
      pluginInstance: '',
      type: 'load',
      typeInstance: '',
      time: Date.now() / 1000,
      interval: INTERVAL_S,
      dsTypes: ['gauge', 'gauge', 'gauge'],
      values: [load, load, load],
    },
  ]);
}

test('pending stays pending with its start, firing stays firing, one notification per transition, across SIGTERM and SIGKILL restarts', async () => {
  const admin = await createUserWithToken(database.db, { username: 'restart-root', superAdmin: true });
  // The ingest process first (its migrations make the tables), then the others together.
  await start('ingest');
  await Promise.all([start('api'), start('worker')]);
  const call = (method: string, url: string, body?: unknown) =>
    apiCall(running.get('api')!.http!, admin.token, method, url, body);

  const rack = await call('POST', '/api/v1/pools', { name: 'rack', kind: 'hardware' });
  expect(rack.status, JSON.stringify(rack.body)).toBe(201);
  const hostIds: Record<'a' | 'b', number> = { a: 0, b: 0 };
  for (const name of ['a', 'b'] as const) {
    const uri = await writeTestHost(dir, { name: `restart-${name}`, cpus: 8, memoryMiB: 16384 });
    const res = await call('POST', '/api/v1/hosts', { uri, poolId: rack.body.id });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    hostIds[name] = res.body.id;
  }
  const channel = await call('POST', '/api/v1/notification-channels', {
    name: 'receiver',
    type: 'webhook',
    config: { url: receiver.url },
  });
  expect(channel.status, JSON.stringify(channel.body)).toBe(201);
  const rule = await call('POST', '/api/v1/alert-rules', {
    name: 'restart-load',
    scope: 'global',
    metric: { source: 'live', field: 'load1' },
    condition: 'above',
    threshold: THRESHOLD,
    windowSeconds: 0,
    pendingSeconds: PENDING_S,
    keepFiringSeconds: 0,
    groupWaitSeconds: 0,
    repeatIntervalSeconds: 3600,
    channelIds: [channel.body.id],
  });
  expect(rule.status, JSON.stringify(rule.body)).toBe(201);
  const ruleId = rule.body.id as number;

  const load = { a: IDLE, b: BUSY };
  const socket = dgram.createSocket('udp4');
  sender = socket;
  const send = () => {
    for (const name of ['a', 'b'] as const)
      for (const p of loadPackets(`restart-${name}`, load[name])) socket.send(p, udpPort, '127.0.0.1');
  };
  send();
  ticker = setInterval(send, INTERVAL_S * 1000);

  const alertOf = async (name: 'a' | 'b') => {
    const { body } = await call('GET', `/api/v1/alerts?ruleId=${ruleId}&hostId=${hostIds[name]}`);
    return body.items[0] as
      | { id: number; state: string; activeSince: string | null; firingSince: string | null }
      | undefined;
  };
  const waitState = async (name: 'a' | 'b', state: string, timeoutMs = 30_000) => {
    await waitFor(async () => (await alertOf(name))?.state === state, timeoutMs, 200);
    return (await alertOf(name))!;
  };
  /** What the receiver got for the rule: one entry per alert and status, in order. */
  const delivered = () =>
    receiver.requests
      .filter((r) => r.json.ruleId === ruleId)
      .flatMap((r) => r.json.alerts.map((a: any) => `${a.labels.host} ${a.status}`));
  /** Every notification of the rule sent and marked so (a process stopped then has nothing half sent). */
  const allSent = async () => {
    const open = await database.db
      .selectFrom('notifications')
      .select('id')
      .where('rule_id', '=', ruleId)
      .where('status', '!=', 'delivered')
      .execute();
    return open.length === 0;
  };
  /**
   * Stops the processes, keeps them down `downMs`, starts them again. With `downMs`, the hosts send nothing from
   * the stop until an interval after the start (what they sent meanwhile went to a closed port anyway).
   */
  const restart = async (roles: HerdRole[], signal: NodeJS.Signals, downMs = 0) => {
    const pauseHosts = downMs > 0;
    if (pauseHosts) clearInterval(ticker);
    const t0 = Date.now();
    await Promise.all(roles.map((r) => stopHerdProcess(running.get(r)!, signal)));
    await new Promise((r) => setTimeout(r, downMs));
    const t1 = Date.now();
    await Promise.all(
      roles.map(async (role) => {
        await start(role);
        // The hosts' next interval reaches the ingest process up to an interval after it is back: here a whole one.
        if (pauseHosts && role === 'ingest') ticker = setInterval(send, INTERVAL_S * 1000);
      }),
    );
    console.log(`${signal}: stopped in ${t1 - t0} ms, started in ${Date.now() - t1} ms`);
  };

  // B fires after PENDING_S; its notification goes out once.
  await waitState('b', 'firing', 40_000);
  await waitFor(() => delivered().length === 1, 10_000);
  await waitFor(allSent, 5_000);
  expect(delivered()).toEqual(['restart-b firing']);

  // A goes above the threshold: pending. Every process is stopped (SIGTERM) and started again meanwhile, down
  // longer than the 3 collectd intervals after which a host counts as silent: herd's own downtime is no silence.
  load.a = BUSY;
  send();
  const pendingA = await waitState('a', 'pending', 10_000);
  await restart(['ingest', 'api', 'worker'], 'SIGTERM', (3 * INTERVAL_S + 1) * 1000);
  const restarted = Date.now();
  // Several evaluation rounds of the new processes; their first came before any host's next interval.
  await new Promise((r) => setTimeout(r, 2_500));
  const dueA = Date.parse(pendingA.activeSince!) + PENDING_S * 1000;
  const afterRestart = await alertOf('a');
  expect(afterRestart?.activeSince).toBe(pendingA.activeSince);
  // (On a machine slow enough that the restart outlasted A's pending period, A may have fired already: on time.)
  if (Date.now() < dueA - 500) expect(afterRestart?.state).toBe('pending');
  expect(await alertOf('b')).toMatchObject({ state: 'firing' });

  // A fires PENDING_S after it went pending before the restart, not PENDING_S after the restart.
  const firingA = await waitState('a', 'firing', 30_000);
  expect(firingA.activeSince).toBe(pendingA.activeSince);
  const firedAt = Date.parse(firingA.firingSince!);
  expect(firedAt).toBeGreaterThanOrEqual(dueA);
  expect(firedAt).toBeLessThan(Math.max(dueA, restarted) + 5_000);
  await waitFor(() => delivered().length === 2, 10_000);
  // B resolves after the restart: notified once.
  load.b = IDLE;
  send();
  await waitState('b', 'ok', 10_000);
  await waitFor(() => delivered().length === 3, 10_000);
  await waitFor(allSent, 5_000);
  expect(delivered()).toEqual(['restart-b firing', 'restart-a firing', 'restart-b resolved']);

  // The processes that evaluate alerts are killed (SIGKILL) with A firing, and started again.
  await restart(['ingest', 'worker'], 'SIGKILL');
  await new Promise((r) => setTimeout(r, 2_500));
  expect(await alertOf('a')).toMatchObject({ state: 'firing', firingSince: firingA.firingSince });
  load.a = IDLE;
  send();
  await waitState('a', 'ok', 10_000);
  await waitFor(() => delivered().length === 4, 10_000);
  await waitFor(allSent, 5_000);
  await new Promise((r) => setTimeout(r, 1_500));
  expect(delivered()).toEqual([
    'restart-b firing',
    'restart-a firing',
    'restart-b resolved',
    'restart-a resolved',
  ]);
  const sent = await database.db
    .selectFrom('notifications')
    .select(['status', 'attempts'])
    .where('rule_id', '=', ruleId)
    .execute();
  expect(sent.every((n) => n.status === 'delivered' && n.attempts === 1)).toBe(true);
}, 90_000);
