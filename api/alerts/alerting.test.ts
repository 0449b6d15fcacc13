import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createMetricsStore } from '../../ingest/store/stores.js';
import { loadConfig } from '../../lib/config.js';
import { createLogger } from '../../lib/log.js';
import { createTestDatabase } from '../../lib/testing/db.js';
import { insertHost } from '../../lib/testing/fleet.js';
import { createPool } from '../../lib/testing/users.js';
import { waitFor } from '../../lib/testing/wait.js';
import { connect, type DatabaseHandle } from '../../schema/db.js';
import { type AlertEvent, startAlertFeed } from './alert-feed.js';
import { insertChannel, insertRule, insertSilence } from './alerts.repository.js';
import { sign } from './notify/webhook-sender.js';
import { type Alerting, startAlerting } from './start-alerting.js';
import { collectdLoop, ManualClock, webhookReceiver } from './test-support.js';

/** The test's webhook receiver listens on loopback, which webhooks may not reach unless allowed. */
const LOCAL_RECEIVER = ['127.0.0.1'];

/**
 * herd's encoder sends collectd load over real UDP into the real ingest pipeline; alerting (clock injected)
 * evaluates the built-in host-load rule (5-minute load per CPU above 1.5 for 5 minutes) against real
 * PostgreSQL and notifies a real HTTP webhook receiver.
 */

let database: DatabaseHandle & { name: string };
const log = createLogger(process.env.HERD_TEST_LOG_LEVEL ?? 'silent');
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());

let seq = 0;
/** A pool with one 2-CPU host and a webhook channel of its own (other tests' alerts do not reach it). */
async function scenario(options: { hosts?: number } = {}) {
  const db = database.db;
  const n = ++seq;
  const poolId = await createPool(db, { name: `pool-${n}` });
  const hostnames: string[] = [];
  for (let i = 0; i < (options.hosts ?? 1); i++) {
    const hostname = `web${n}-${i}`;
    await insertHost(db, { poolId, cpus: 2, memoryMiB: 4096, hostname });
    hostnames.push(hostname);
  }
  const hook = await webhookReceiver();
  const secret = `secret-${n}`;
  const channelId = await insertChannel(db, {
    name: `ops-${n}`,
    type: 'webhook',
    pool_id: poolId,
    config: JSON.stringify({ url: hook.url }),
    secret,
  });
  return { poolId, hostnames, hostname: hostnames[0], hook, secret, channelId };
}

async function instance(hostname: string, builtin = 'host-load') {
  return database.db
    .selectFrom('alert_instances as i')
    .innerJoin('alert_rules as r', 'r.id', 'i.rule_id')
    .selectAll('i')
    .where('r.builtin', '=', builtin)
    .where(({ ref, eb }) => eb(ref('i.labels', '->>').key('host' as never), '=', hostname))
    .executeTakeFirst();
}

function expectSigned(req: { headers: Record<string, unknown>; body: string }, secret: string) {
  expect(req.headers['x-herd-signature']).toBe(sign(secret, req.body));
}

describe('host load alert, end to end', () => {
  /**
   * Drives the built-in rule through ok → pending → firing → resolved with 10 s collectd intervals.
   * `restartAt`: seconds at which herd (ingest and alerting) is restarted, state coming back from PostgreSQL.
   */
  async function drive(restartAt: number[]) {
    const s = await scenario();
    const clock = new ManualClock();
    const t0 = clock.now;
    const at = () => (clock.now - t0) / 1000;
    let loop = await collectdLoop(clock.read, log);
    const start = () =>
      startAlerting({
        webhookAllow: LOCAL_RECEIVER,
        db: database.db,
        log,
        liveView: loop.liveView,
        clock: clock.read,
        autoRun: false,
      });
    let alerting: Alerting = await start();
    const events: Array<[number, string]> = [];
    const listen = (a: Alerting) =>
      a.feed.on('alert', (e: AlertEvent) => {
        if (e.alert.labels.host === s.hostname && e.alert.builtin === 'host-load')
          events.push([at(), e.transition]);
      });
    listen(alerting);
    const states: Record<number, string | undefined> = {};
    try {
      for (let t = 0; t <= 600; t += 10) {
        if (restartAt.includes(t)) {
          await alerting.stop();
          await loop.close();
          loop = await collectdLoop(clock.read, log);
          alerting = await start();
          listen(alerting);
        }
        // 5-minute load 4 on 2 CPUs (2 per CPU) until 390 s, then 1 (0.5 per CPU).
        await loop.report(s.hostname, { load5: t < 400 ? 4 : 1 });
        await alerting.evaluate();
        await alerting.dispatch();
        states[t] = (await instance(s.hostname))?.state;
        if (t === 330) expect(s.hook.requests).toHaveLength(1);
        clock.advance(10);
      }
    } finally {
      await alerting.stop();
      await loop.close();
      await s.hook.close();
    }
    expect(states[0]).toBe('pending');
    expect(states[290]).toBe('pending');
    expect(states[300]).toBe('firing');
    // Last breach at 390 s, keep-firing 120 s: still firing at 500 s, resolved at 510 s.
    expect(states[500]).toBe('firing');
    expect(states[510]).toBe('ok');
    expect(events).toEqual([
      [0, 'pending'],
      [300, 'firing'],
      [510, 'resolved'],
    ]);

    // Group wait 30 s: the firing notification went out at 330 s, the resolved one at 540 s — one each.
    const [firing, resolved, ...more] = s.hook.requests;
    expect(more).toEqual([]);
    for (const req of [firing, resolved]) expectSigned(req, s.secret);
    expect(firing.json).toMatchObject({
      status: 'firing',
      alerts: [
        {
          status: 'firing',
          labels: { alertname: 'Host load high', host: s.hostname, severity: 'warning' },
          value: 2,
        },
      ],
    });
    expect(firing.json.alerts[0].summary).toContain('load5PerCpu = 2 (above 1.5)');
    expect(resolved.json).toMatchObject({
      status: 'resolved',
      alerts: [{ status: 'resolved', labels: { host: s.hostname } }],
    });
    const history = await database.db
      .selectFrom('notifications')
      .select(['status', 'attempts'])
      .where('channel_id', '=', s.channelId)
      .orderBy('id')
      .execute();
    expect(history).toEqual([
      { status: 'delivered', attempts: 1 },
      { status: 'delivered', attempts: 1 },
    ]);
  }

  test('pending, fires after 5 minutes, one signed notification, resolves after keep-firing', async () => {
    await drive([]);
  });

  test('the same with herd restarted while pending and while firing', async () => {
    await drive([150, 310, 460]);
  });

  test('two evaluators at once send one notification', async () => {
    const s = await scenario();
    const clock = new ManualClock();
    const loop = await collectdLoop(clock.read, log);
    const second = connect(database.pool.options.connectionString!, { max: 5 });
    const options = { log, liveView: loop.liveView, clock: clock.read, autoRun: false };
    const a = await startAlerting({ webhookAllow: LOCAL_RECEIVER, ...options, db: database.db });
    const b = await startAlerting({ webhookAllow: LOCAL_RECEIVER, ...options, db: second.db });
    const transitions: string[] = [];
    let skipped = 0;
    for (const x of [a, b]) {
      x.feed.on('alert', (e: AlertEvent) => {
        if (e.alert.labels.host === s.hostname && e.alert.builtin === 'host-load')
          transitions.push(e.transition);
      });
    }
    try {
      for (let t = 0; t <= 600; t += 10) {
        await loop.report(s.hostname, { load5: t < 400 ? 4 : 1 });
        const rounds = await Promise.all([a.evaluate(), b.evaluate(), a.evaluate(), b.evaluate()]);
        for (const r of rounds) skipped += r.skipped;
        await Promise.all([a.dispatch(), b.dispatch()]);
        clock.advance(10);
      }
    } finally {
      await Promise.all([a.stop(), b.stop()]);
      await second.close();
      await loop.close();
      await s.hook.close();
    }
    // The evaluators did run into each other (one skipped a rule the other held), and still:
    expect(skipped).toBeGreaterThan(0);
    expect(transitions).toEqual(['pending', 'firing', 'resolved']);
    expect(s.hook.requests.map((r) => r.json.status)).toEqual(['firing', 'resolved']);
  });
});

describe('notifications', () => {
  /** A rule on the scenario's pool that fires as soon as the load per CPU is above 1. */
  async function quickRule(poolId: number, extra: Record<string, unknown> = {}) {
    return insertRule(database.db, {
      name: `Load above 1 (${poolId})`,
      scope: 'pool',
      pool_id: poolId,
      metric: JSON.stringify({ source: 'live', field: 'load5PerCpu' }),
      condition: 'above',
      threshold: 1,
      pending_seconds: 0,
      keep_firing_seconds: 0,
      group_wait_seconds: 30,
      ...extra,
    });
  }

  async function harness() {
    const clock = new ManualClock();
    const loop = await collectdLoop(clock.read, log);
    const alerting = await startAlerting({
      webhookAllow: LOCAL_RECEIVER,
      db: database.db,
      log,
      liveView: loop.liveView,
      clock: clock.read,
      autoRun: false,
      retry: { baseMs: 1_000, maxMs: 4_000, maxAttempts: 3 },
    });
    return {
      clock,
      loop,
      alerting,
      async close() {
        await alerting.stop();
        await loop.close();
      },
    };
  }

  test('alerts firing together are grouped by rule and pool into one notification', async () => {
    const s = await scenario({ hosts: 3 });
    await quickRule(s.poolId);
    const h = await harness();
    try {
      for (const host of s.hostnames.slice(0, 2)) await h.loop.report(host, { load5: 3 });
      await h.alerting.evaluate();
      h.clock.advance(10);
      // The third host fires within the group wait: same notification.
      for (const host of s.hostnames) await h.loop.report(host, { load5: 3 });
      await h.alerting.evaluate();
      await h.alerting.dispatch();
      expect(s.hook.requests).toHaveLength(0);
      h.clock.advance(20);
      await h.alerting.dispatch();
    } finally {
      await h.close();
      await s.hook.close();
    }
    expect(s.hook.requests).toHaveLength(1);
    const body = s.hook.requests[0].json;
    expect(body.alerts.map((a: any) => a.labels.host).sort()).toEqual([...s.hostnames].sort());
    expect(body.commonLabels).toMatchObject({ pool: `pool-${seq}`, alertname: `Load above 1 (${s.poolId})` });
  });

  test('a failing webhook is retried with backoff, with the same signed body', async () => {
    const s = await scenario();
    await quickRule(s.poolId, { group_wait_seconds: 0 });
    s.hook.failNext(500, 503);
    const h = await harness();
    try {
      await h.loop.report(s.hostname, { load5: 3 });
      await h.alerting.evaluate();
      expect(await h.alerting.dispatch()).toMatchObject({ retrying: 1 });
      h.clock.advance(0.5);
      expect(await h.alerting.dispatch()).toMatchObject({ retrying: 0, delivered: 0 });
      h.clock.advance(0.5);
      expect(await h.alerting.dispatch()).toMatchObject({ retrying: 1 });
      h.clock.advance(2);
      expect(await h.alerting.dispatch()).toMatchObject({ delivered: 1 });
    } finally {
      await h.close();
      await s.hook.close();
    }
    const [first, ...rest] = s.hook.requests;
    expect(rest).toHaveLength(2);
    for (const r of rest) {
      expect(r.body).toBe(first.body);
      expectSigned(r, s.secret);
    }
    const row = await database.db
      .selectFrom('notifications')
      .selectAll()
      .where('channel_id', '=', s.channelId)
      .executeTakeFirstOrThrow();
    expect(row).toMatchObject({ status: 'delivered', attempts: 3, last_error: null });
    expect((row.history as any[]).map((e) => e.outcome)).toEqual(['error', 'error', 'delivered']);
  });

  test('a receiver refusing for good (4xx) is not retried', async () => {
    const s = await scenario();
    await quickRule(s.poolId, { group_wait_seconds: 0 });
    s.hook.failNext(410);
    const h = await harness();
    try {
      await h.loop.report(s.hostname, { load5: 3 });
      await h.alerting.evaluate();
      expect(await h.alerting.dispatch()).toMatchObject({ failed: 1 });
    } finally {
      await h.close();
      await s.hook.close();
    }
    const row = await database.db
      .selectFrom('notifications')
      .selectAll()
      .where('channel_id', '=', s.channelId)
      .executeTakeFirstOrThrow();
    expect(row).toMatchObject({ status: 'failed', attempts: 1 });
    expect(row.last_error).toContain('410');
  });

  test('a silence holds matching alerts back; the delivery history says so', async () => {
    const s = await scenario({ hosts: 2 });
    await quickRule(s.poolId, { group_wait_seconds: 0 });
    const h = await harness();
    await insertSilence(database.db, {
      pool_id: s.poolId,
      matchers: JSON.stringify([{ name: 'host', op: '=~', value: `${s.hostnames[0]}|nothing` }]),
      starts_at: new Date(h.clock.now - 1000),
      ends_at: new Date(h.clock.now + 3600_000),
      comment: 'maintenance',
    });
    try {
      await h.loop.report(s.hostnames[0], { load5: 3 });
      await h.alerting.evaluate();
      expect(await h.alerting.dispatch()).toMatchObject({ silenced: 1 });
      h.clock.advance(10);
      for (const host of s.hostnames) await h.loop.report(host, { load5: 3 });
      await h.alerting.evaluate();
      expect(await h.alerting.dispatch()).toMatchObject({ delivered: 1 });
    } finally {
      await h.close();
      await s.hook.close();
    }
    expect(s.hook.requests).toHaveLength(1);
    expect(s.hook.requests[0].json.alerts.map((a: any) => a.labels.host)).toEqual([s.hostnames[1]]);
  });
});

describe('other rules and sources', () => {
  test('host unreachable: collectd silent for 3 intervals and the libvirt heartbeat failing', async () => {
    const s = await scenario();
    const clock = new ManualClock();
    const loop = await collectdLoop(clock.read, log);
    const alerting = await startAlerting({
      webhookAllow: LOCAL_RECEIVER,
      db: database.db,
      log,
      liveView: loop.liveView,
      clock: clock.read,
      autoRun: false,
    });
    const state = async () => (await instance(s.hostname, 'host-unreachable'))?.state ?? 'ok';
    const setHeartbeat = (error: string | null) =>
      database.db
        .updateTable('hosts')
        .set({ heartbeat_error: error, state: error ? 'unreachable' : 'up' })
        .where('hostname', '=', s.hostname)
        .execute();
    try {
      await loop.report(s.hostname, { load5: 0.1 });
      await setHeartbeat('connection refused');
      await alerting.evaluate();
      expect(await state()).toBe('ok'); // collectd still talks: libvirtd trouble, not a host down
      clock.advance(30);
      await alerting.evaluate();
      expect(await state()).toBe('ok'); // 30 s = 3 intervals, not more
      clock.advance(10);
      await alerting.evaluate();
      expect(await state()).toBe('firing');
      clock.advance(30);
      await alerting.dispatch();
      expect(s.hook.requests.map((r) => r.json.alerts[0].labels.alertname)).toEqual(['Host unreachable']);
      await setHeartbeat(null);
      await alerting.evaluate();
      clock.advance(60); // keep-firing
      await alerting.evaluate();
      expect(await state()).toBe('ok');
    } finally {
      await alerting.stop();
      await loop.close();
      await s.hook.close();
    }
  });

  test('host memory: used over the memory plugin total', async () => {
    const s = await scenario();
    const clock = new ManualClock();
    const loop = await collectdLoop(clock.read, log);
    const alerting = await startAlerting({
      webhookAllow: LOCAL_RECEIVER,
      db: database.db,
      log,
      liveView: loop.liveView,
      clock: clock.read,
      autoRun: false,
    });
    try {
      await loop.report(s.hostname, { load5: 0.1, memoryUsedMiB: 3900, memoryFreeMiB: 100 });
      await alerting.evaluate();
      expect(await instance(s.hostname, 'host-memory')).toMatchObject({ state: 'pending', value: 97.5 });
    } finally {
      await alerting.stop();
      await loop.close();
      await s.hook.close();
    }
  });

  test('a rule on the metrics store: the mean over its window', async () => {
    const s = await scenario();
    const hostId = (
      await database.db
        .selectFrom('hosts')
        .select('id')
        .where('hostname', '=', s.hostname)
        .executeTakeFirstOrThrow()
    ).id;
    const clock = new ManualClock(Date.now());
    const config = loadConfig({ HERD_DATA_DIR: '/nonexistent-herd-test' });
    const store = createMetricsStore(config, database.db, log, { spool: false });
    await store.start();
    const at = (ago: number, value: number) => ({
      measurement: 'cpu_value',
      tags: { host: s.hostname, instance: '0', type: 'percent', type_instance: 'user' },
      fields: { value },
      time: clock.now / 1000 - ago,
    });
    store.write([at(250, 99), at(100, 80), at(50, 90), at(10, 100)]);
    await store.flush();
    const ruleId = await insertRule(database.db, {
      name: 'cpu user high',
      scope: 'host',
      host_id: hostId,
      metric: JSON.stringify({ source: 'store', measurement: 'cpu_value', tags: { type_instance: 'user' } }),
      condition: 'above',
      threshold: 85,
      window_seconds: 120,
      window_function: 'mean',
    });
    const alerting = await startAlerting({
      webhookAllow: LOCAL_RECEIVER,
      db: database.db,
      log,
      store,
      clock: clock.read,
      autoRun: false,
    });
    try {
      await alerting.evaluate();
      const row = await database.db
        .selectFrom('alert_instances')
        .selectAll()
        .where('rule_id', '=', ruleId)
        .executeTakeFirstOrThrow();
      expect(row).toMatchObject({ state: 'firing', subject: `host:${hostId}`, value: 90 });
      await database.db
        .updateTable('alert_rules')
        .set({ window_function: 'min' })
        .where('id', '=', ruleId)
        .execute();
      await alerting.evaluate();
      expect(
        await database.db
          .selectFrom('alert_instances')
          .select(['state', 'value'])
          .where('rule_id', '=', ruleId)
          .executeTakeFirstOrThrow(),
      ).toEqual({ state: 'ok', value: 80 });
    } finally {
      await alerting.stop();
      await store.stop();
      await s.hook.close();
    }
  });

  test('alert changes reach the feeds of other herd processes (LISTEN/NOTIFY), once each', async () => {
    const s = await scenario();
    const clock = new ManualClock();
    const loop = await collectdLoop(clock.read, log);
    const alerting = await startAlerting({
      webhookAllow: LOCAL_RECEIVER,
      db: database.db,
      log,
      liveView: loop.liveView,
      clock: clock.read,
      autoRun: false,
      pgPool: database.pool,
    });
    const other = await startAlertFeed({ pool: database.pool, log });
    const local: string[] = [];
    const remote: string[] = [];
    alerting.feed.on(
      'alert',
      (e: AlertEvent) => e.alert.labels.host === s.hostname && local.push(e.transition),
    );
    other.feed.on(
      'alert',
      (e: AlertEvent) =>
        e.alert.labels.host === s.hostname && remote.push(`${e.transition}:${e.alert.ruleName}`),
    );
    try {
      await loop.report(s.hostname, { load5: 4 });
      await alerting.evaluate();
      await waitFor(() => remote.length > 0, 5_000, 10);
    } finally {
      await other.stop();
      await alerting.stop();
      await loop.close();
      await s.hook.close();
    }
    expect(local).toEqual(['pending']);
    expect(remote).toEqual(['pending:Host load high']);
  });
});
