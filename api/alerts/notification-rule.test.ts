import { afterAll, beforeAll, expect, test } from 'vitest';
import { replayAt } from '../../ingest/protocol/test-fixtures.js';
import { createLogger } from '../../lib/log.js';
import { createTestApp, type TestApp } from '../../lib/testing/app.js';
import { insertHost } from '../../lib/testing/fleet.js';
import { authHeader, createPool, createUserWithToken } from '../../lib/testing/users.js';
import type { AlertEvent } from './alert-feed.js';
import { startAlerting } from './start-alerting.js';
import { collectdLoop, ManualClock } from './test-support.js';

/**
 * A `notification` rule counts a host's collectd notifications in its window: collectd's captured notification
 * packets, re-timed to now, go over real UDP through the real ingest into PostgreSQL, and alerting (clock
 * injected, starting now) fires on the failure ones and resolves once they are out of the window.
 */

const log = createLogger(process.env.HERD_TEST_LOG_LEVEL ?? 'silent');
let t: TestApp;
let admin: string;
beforeAll(async () => {
  t = await createTestApp();
  admin = (await createUserWithToken(t.database.db, { username: 'root', superAdmin: true })).token;
});
afterAll(() => t.close());

const createRule = (body: Record<string, unknown>) =>
  t.app.inject({ method: 'POST', url: '/api/v1/alert-rules', headers: authHeader(admin), payload: body });

test('"any failure notification in 5 min" fires on a real failure notification and resolves after', async () => {
  const db = t.database.db;
  const poolId = await createPool(db, { name: 'rack' });
  const hostId = await insertHost(db, { poolId, cpus: 2, memoryMiB: 4096, hostname: 'notif-host' });
  const quiet = await insertHost(db, { poolId, cpus: 2, memoryMiB: 4096, hostname: 'quiet-host' });
  const rule = (name: string, metric: Record<string, unknown>) =>
    createRule({
      name,
      scope: 'pool',
      poolId,
      metric: { source: 'notification', ...metric },
      condition: 'above',
      threshold: 0,
      windowSeconds: 300,
      pendingSeconds: 0,
      keepFiringSeconds: 0,
      severity: 'critical',
    });
  const failures = await rule('collectd failure', { severity: 'failure' });
  expect(failures.statusCode).toBe(201);
  const okays = await rule('exec okay', {
    severity: 'okay',
    plugin: 'exec',
    messageMatch: 'TEST NOTIFICATION 1',
  });
  expect(okays.statusCode).toBe(201);
  const none = await rule('no such message', { messageMatch: 'nothing says this' });
  const ids = { failures: failures.json().id, okays: okays.json().id, none: none.json().id };

  const clock = new ManualClock(Date.now());
  const loop = await collectdLoop(clock.read, log, { db });
  const alerting = await startAlerting({ db, log, clock: clock.read, autoRun: false });
  const seen: Array<[string, string, number | null]> = [];
  alerting.feed.on('alert', (e: AlertEvent) => {
    if (e.alert.hostId === hostId) seen.push([e.alert.ruleName, e.transition, e.alert.value]);
  });
  const instance = (ruleId: number, host: number) =>
    db
      .selectFrom('alert_instances')
      .select(['state', 'value'])
      .where('rule_id', '=', ruleId)
      .where('host_id', '=', host)
      .executeTakeFirst();
  try {
    await alerting.evaluate();
    expect(await instance(ids.failures, hostId)).toBeUndefined(); // nothing yet: ok, never written

    const replay = replayAt('notifications', clock.now / 1000);
    await loop.sendPackets(replay.packets.map((p) => p.bytes));
    const notes = replay.expected.filter((r) => r.kind === 'notification');
    const failureCount = notes.filter((r) => r.severity === 1).length;
    expect(failureCount).toBe(2);

    clock.advance(10);
    await alerting.evaluate();
    expect(await instance(ids.failures, hostId)).toMatchObject({ state: 'firing', value: failureCount });
    expect(await instance(ids.failures, quiet)).toBeUndefined();
    expect(await instance(ids.okays, hostId)).toMatchObject({
      state: 'firing',
      value: notes.filter((r) => r.severity === 4 && r.message.includes('notification 1')).length,
    });
    expect(await instance(ids.none, hostId)).toBeUndefined();

    // still within the window 4 minutes later; gone from it after 5
    clock.advance(240);
    await alerting.evaluate();
    expect((await instance(ids.failures, hostId))?.state).toBe('firing');
    clock.advance(60);
    await alerting.evaluate();
    expect(await instance(ids.failures, hostId)).toMatchObject({ state: 'ok', value: 0 });
    expect(seen.filter(([name]) => name === 'collectd failure').map(([, tr]) => tr)).toEqual([
      'firing',
      'resolved',
    ]);
  } finally {
    await alerting.stop();
    await loop.close();
  }
});

test('a notification rule names its bad field', async () => {
  for (const [metric, field] of [
    [{ severity: 'critical' }, /severity/],
    [{ messageMatch: '' }, /messageMatch/],
  ] as const) {
    const res = await createRule({
      name: 'bad',
      scope: 'global',
      metric: { source: 'notification', ...metric },
      condition: 'above',
      threshold: 0,
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toMatch(field);
  }
});
