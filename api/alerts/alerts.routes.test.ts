import net, { type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestApp, type TestApp } from '../../lib/testing/app.js';
import { insertHost } from '../../lib/testing/fleet.js';
import { authHeader, createPool, createUserWithToken, grantRole } from '../../lib/testing/users.js';
import { authRoutes } from '../auth/auth.routes.js';
import { alertRoutes } from './alerts.routes.js';
import { ensureBuiltinRules } from './builtin-rules.js';

/** The alerting API over the real app and database: schemas, access checks, audit. */

let t: TestApp;
let admin: { id: number; token: string };
let operator: { id: number; token: string };
let monitor: { id: number; token: string };
let poolA: number;
let poolB: number;
let hostA: number;
let hostB: number;

beforeAll(async () => {
  t = await createTestApp({ routes: [authRoutes, alertRoutes] });
  const db = t.database.db;
  await ensureBuiltinRules(db);
  admin = await createUserWithToken(db, { username: 'root', superAdmin: true });
  operator = await createUserWithToken(db, { username: 'operator' });
  monitor = await createUserWithToken(db, { username: 'watcher' });
  poolA = await createPool(db, { name: 'A' });
  poolB = await createPool(db, { name: 'B' });
  await grantRole(db, poolA, operator.id, 'admin');
  await grantRole(db, poolA, monitor.id, 'monitor');
  hostA = await insertHost(db, { poolId: poolA, cpus: 4, memoryMiB: 8192, hostname: 'a1' });
  hostB = await insertHost(db, { poolId: poolB, cpus: 4, memoryMiB: 8192, hostname: 'b1' });
});
afterAll(() => t.close());

const as = (who: { token: string }) => ({ headers: authHeader(who.token) });
const call = (
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
  url: string,
  who: { token: string },
  payload?: object,
) => t.app.inject({ method, url, payload, ...as(who) });

const loadRule = {
  name: 'load',
  metric: { source: 'live', field: 'load5PerCpu' },
  condition: 'above',
  threshold: 2,
};

describe('alert rules', () => {
  test('no token: 401', async () => {
    expect((await t.app.inject({ method: 'GET', url: '/api/v1/alert-rules' })).statusCode).toBe(401);
  });

  test('built-in rules are there, enabled, and visible to everyone', async () => {
    const res = await call('GET', '/api/v1/alert-rules?scope=global', monitor);
    expect(res.statusCode).toBe(200);
    const builtins = res
      .json()
      .items.filter((r: any) => r.builtin)
      .map((r: any) => [r.builtin, r.enabled]);
    expect(builtins).toEqual([
      ['host-load', true],
      ['host-memory', true],
      ['host-unreachable', true],
      ['quota-near-limit', true],
    ]);
    const load = res.json().items.find((r: any) => r.builtin === 'host-load');
    expect(load).toMatchObject({
      metric: { source: 'live', field: 'load5PerCpu' },
      threshold: 1.5,
      pendingSeconds: 300,
    });
  });

  test('a pool admin creates rules on its pool and hosts, not on others or globally', async () => {
    const created = await call('POST', '/api/v1/alert-rules', operator, {
      ...loadRule,
      scope: 'pool',
      poolId: poolA,
      aggregate: 'mean',
    });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({
      scope: 'pool',
      poolId: poolA,
      aggregate: 'mean',
      pendingSeconds: 0,
      groupWaitSeconds: 30,
    });
    expect(
      (await call('POST', '/api/v1/alert-rules', operator, { ...loadRule, scope: 'host', hostId: hostA }))
        .statusCode,
    ).toBe(201);
    expect(
      (await call('POST', '/api/v1/alert-rules', operator, { ...loadRule, scope: 'pool', poolId: poolB }))
        .statusCode,
    ).toBe(404);
    expect(
      (await call('POST', '/api/v1/alert-rules', operator, { ...loadRule, scope: 'host', hostId: hostB }))
        .statusCode,
    ).toBe(404);
    expect(
      (await call('POST', '/api/v1/alert-rules', operator, { ...loadRule, scope: 'global' })).statusCode,
    ).toBe(403);
    expect(
      (await call('POST', '/api/v1/alert-rules', monitor, { ...loadRule, scope: 'pool', poolId: poolA }))
        .statusCode,
    ).toBe(403);

    const audit = await t.database.db
      .selectFrom('audit_log')
      .select('action')
      .where('action', '=', 'alert_rule.create')
      .execute();
    expect(audit).toHaveLength(2);
  });

  test('bad rules answer 400 naming the field', async () => {
    const bad = async (body: object) => {
      const res = await call('POST', '/api/v1/alert-rules', admin, { ...loadRule, scope: 'global', ...body });
      expect(res.statusCode).toBe(400);
      return res.json().message as string;
    };
    expect(await bad({ metric: { source: 'live', field: 'nonsense' } })).toMatch(/^metric\.field/);
    expect(await bad({ metric: { source: 'live' } })).toMatch(/^metric\.plugin/);
    expect(await bad({ metric: { source: 'store' } })).toMatch(/^metric\.measurement/);
    expect(await bad({ threshold: null })).toMatch(/^threshold/);
    expect(await bad({ condition: 'sideways' })).toMatch(/condition/);
    expect(await bad({ aggregate: 'max' })).toMatch(/^aggregate/);
    expect(await bad({ scope: 'pool' })).toMatch(/^poolId/);
    expect(await bad({ channelIds: [999] })).toMatch(/^channelIds/);
  });

  test('monitors see pool rules but cannot change them; others do not see them', async () => {
    const { id } = (
      await call('POST', '/api/v1/alert-rules', operator, { ...loadRule, scope: 'pool', poolId: poolA })
    ).json();
    expect((await call('GET', `/api/v1/alert-rules/${id}`, monitor)).statusCode).toBe(200);
    expect((await call('PATCH', `/api/v1/alert-rules/${id}`, monitor, { threshold: 3 })).statusCode).toBe(
      403,
    );
    const stranger = await createUserWithToken(t.database.db, { username: `stranger-${id}` });
    expect((await call('GET', `/api/v1/alert-rules/${id}`, stranger)).statusCode).toBe(404);
    const list = (await call('GET', '/api/v1/alert-rules', stranger)).json();
    expect(list.items.every((r: any) => r.scope === 'global')).toBe(true);
    const patched = await call('PATCH', `/api/v1/alert-rules/${id}`, operator, {
      threshold: 3,
      pendingSeconds: 60,
      labels: { team: 'a' },
    });
    expect(patched.json()).toMatchObject({ threshold: 3, pendingSeconds: 60, labels: { team: 'a' } });
    expect((await call('DELETE', `/api/v1/alert-rules/${id}`, operator)).statusCode).toBe(204);
    expect((await call('GET', `/api/v1/alert-rules/${id}`, operator)).statusCode).toBe(404);
  });

  test('built-in rules: the super-admin may tune or disable them, nobody deletes them', async () => {
    const rules = (await call('GET', '/api/v1/alert-rules?scope=global', admin)).json().items;
    const memory = rules.find((r: any) => r.builtin === 'host-memory');
    expect(
      (await call('PATCH', `/api/v1/alert-rules/${memory.id}`, operator, { enabled: false })).statusCode,
    ).toBe(403);
    const patched = await call('PATCH', `/api/v1/alert-rules/${memory.id}`, admin, { threshold: 90 });
    expect(patched.json()).toMatchObject({ threshold: 90, builtin: 'host-memory' });
    const del = await call('DELETE', `/api/v1/alert-rules/${memory.id}`, admin);
    expect(del.statusCode).toBe(409);
    expect(del.json().error).toBe('builtin_rule');
    // Seeding again at the next start keeps the edit.
    await ensureBuiltinRules(t.database.db);
    expect((await call('GET', `/api/v1/alert-rules/${memory.id}`, admin)).json().threshold).toBe(90);
  });
});

describe('alerts', () => {
  test('operators see the alerts of pools they may view, filtered', async () => {
    const db = t.database.db;
    const rule = await db
      .selectFrom('alert_rules')
      .select('id')
      .where('builtin', '=', 'host-load')
      .executeTakeFirstOrThrow();
    const at = new Date();
    const [a, b] = await Promise.all(
      [
        { host: hostA, pool: poolA, name: 'a1', state: 'firing' as const },
        { host: hostB, pool: poolB, name: 'b1', state: 'pending' as const },
      ].map(async (x) =>
        db
          .insertInto('alert_instances')
          .values({
            rule_id: rule.id,
            subject: `host:${x.host}`,
            pool_id: x.pool,
            host_id: x.host,
            labels: JSON.stringify({ host: x.name }),
            state: x.state,
            value: 2.5,
            state_changed_at: at,
            firing_since: x.state === 'firing' ? at : null,
          })
          .returning('id')
          .executeTakeFirstOrThrow(),
      ),
    );
    const mine = (await call('GET', '/api/v1/alerts', monitor)).json();
    expect(mine.items.map((i: any) => i.id)).toEqual([a.id]);
    expect(mine.items[0]).toMatchObject({
      state: 'firing',
      ruleName: 'Host load high',
      severity: 'warning',
      silenced: false,
      value: 2.5,
    });
    expect((await call('GET', '/api/v1/alerts?state=pending,firing', admin)).json().total).toBe(2);
    expect((await call('GET', `/api/v1/alerts?hostId=${hostB}&active=true`, admin)).json().items[0].id).toBe(
      b.id,
    );
    expect((await call('GET', `/api/v1/alerts/${b.id}`, monitor)).statusCode).toBe(404);
    expect((await call('GET', `/api/v1/alerts/${a.id}`, monitor)).json()).toMatchObject({
      id: a.id,
      notifications: [],
    });

    // A silence on the host marks the alert silenced.
    const silence = await call('POST', '/api/v1/silences', operator, {
      poolId: poolA,
      matchers: [{ name: 'host', value: 'a1' }],
      endsAt: new Date(Date.now() + 3600_000).toISOString(),
      comment: 'disk swap',
    });
    expect(silence.statusCode).toBe(201);
    expect((await call('GET', `/api/v1/alerts/${a.id}`, monitor)).json().silenced).toBe(true);
    await call('DELETE', `/api/v1/silences/${silence.json().id}`, operator);
  });
});

describe('silences', () => {
  const inAnHour = () => new Date(Date.now() + 3600_000).toISOString();

  test('pool silences by pool admins, global ones by the super-admin; who and why are kept', async () => {
    const res = await call('POST', '/api/v1/silences', operator, {
      poolId: poolA,
      matchers: [{ name: 'alertname', op: '=~', value: 'Host.*' }],
      endsAt: inAnHour(),
      comment: 'rack move',
    });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({
      poolId: poolA,
      status: 'active',
      createdByName: 'operator',
      comment: 'rack move',
    });
    const id = res.json().id;
    const global = { matchers: [{ name: 'severity', value: 'info' }], endsAt: inAnHour(), comment: 'quiet' };
    expect((await call('POST', '/api/v1/silences', operator, global)).statusCode).toBe(403);
    expect((await call('POST', '/api/v1/silences', admin, global)).statusCode).toBe(201);
    expect((await call('POST', '/api/v1/silences', monitor, { ...global, poolId: poolA })).statusCode).toBe(
      403,
    );
    expect((await call('POST', '/api/v1/silences', operator, { ...global, poolId: poolB })).statusCode).toBe(
      404,
    );

    const listed = (await call('GET', '/api/v1/silences?active=true', monitor)).json();
    expect(listed.items.map((s: any) => s.id)).toContain(id);
    const ended = await call('PATCH', `/api/v1/silences/${id}`, operator, {
      endsAt: new Date(Date.now() - 1000).toISOString(),
      startsAt: new Date(Date.now() - 5000).toISOString(),
    });
    expect(ended.json().status).toBe('expired');
    expect((await call('DELETE', `/api/v1/silences/${id}`, monitor)).statusCode).toBe(403);
    expect((await call('DELETE', `/api/v1/silences/${id}`, operator)).statusCode).toBe(204);
  });

  test('bad silences answer 400', async () => {
    const base = { poolId: poolA, endsAt: inAnHour(), comment: 'x' };
    const bad = await call('POST', '/api/v1/silences', operator, {
      ...base,
      matchers: [{ name: 'host', op: '=~', value: '(' }],
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toMatch(/^matchers\.0\.value/);
    const backreference = await call('POST', '/api/v1/silences', operator, {
      ...base,
      matchers: [
        { name: 'alertname', value: 'x' },
        { name: 'host', op: '!~', value: '(a)\\1' },
      ],
    });
    expect(backreference.statusCode).toBe(400);
    expect(backreference.json()).toMatchObject({ field: 'matchers.1.value' });
    const past = await call('POST', '/api/v1/silences', operator, {
      ...base,
      matchers: [{ name: 'a', value: 'b' }],
      endsAt: '2020-01-01T00:00:00Z',
    });
    expect(past.json().message).toMatch(/^endsAt/);
    expect((await call('POST', '/api/v1/silences', operator, { ...base, matchers: [] })).statusCode).toBe(
      400,
    );
  });
});

describe('notification channels', () => {
  test('a webhook to loopback, private, link-local or a metadata address is refused when made or changed', async () => {
    for (const url of [
      'http://169.254.169.254/latest/meta-data/',
      'http://10.1.2.3/hook',
      'http://localhost./',
      'http://LOCALHOST:8080/',
      'http://127.0.0.1:8080/api/v1/pools',
      'http://localhost/',
      'http://[::1]:25826/',
      'http://[::ffff:127.0.0.1]/',
      'http://[fe80::1]/',
      'http://0.0.0.0:8080/',
    ]) {
      const res = await call('POST', '/api/v1/notification-channels', operator, {
        name: 'ssrf',
        type: 'webhook',
        poolId: poolA,
        config: { url },
      });
      expect(res.statusCode, url).toBe(400);
      expect(res.json().message, url).toContain('refused as a target');
    }
    const made = await call('POST', '/api/v1/notification-channels', operator, {
      name: 'outside',
      type: 'webhook',
      poolId: poolA,
      config: { url: 'http://203.0.113.7/hook' },
    });
    expect(made.statusCode, made.body).toBe(201);
    const moved = await call('PATCH', `/api/v1/notification-channels/${made.json().id}`, operator, {
      config: { url: 'http://169.254.169.254/' },
    });
    expect(moved.statusCode).toBe(400);
  });

  test('an e-mail channel whose SMTP server is loopback, private or link-local is refused when made or changed', async () => {
    const listener = net.createServer((socket) => {
      connections++;
      socket.destroy();
    });
    let connections = 0;
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    const port = (listener.address() as AddressInfo).port;
    try {
      for (const host of [
        '127.0.0.1',
        'localhost.',
        'LOCALHOST',
        '[::1]',
        '::ffff:127.0.0.1',
        '10.0.0.5',
        '169.254.169.254',
      ]) {
        const res = await call('POST', '/api/v1/notification-channels', operator, {
          name: 'scan',
          type: 'email',
          poolId: poolA,
          config: { to: ['ops@example.test'], smtp: { host, port } },
        });
        expect(res.statusCode, host).toBe(400);
        expect(res.json(), host).toMatchObject({ field: 'config.smtp.host' });
        expect(res.json().message, host).toContain('refused as a target');
      }
      const made = await call('POST', '/api/v1/notification-channels', operator, {
        name: 'mail',
        type: 'email',
        poolId: poolA,
        config: { to: ['ops@example.test'], smtp: { host: 'smtp.example.test', port } },
      });
      expect(made.statusCode, made.body).toBe(201);
      const moved = await call('PATCH', `/api/v1/notification-channels/${made.json().id}`, operator, {
        config: { to: ['ops@example.test'], smtp: { host: '127.0.0.1', port } },
      });
      expect(moved.statusCode).toBe(400);
      expect(connections).toBe(0);
    } finally {
      await new Promise((resolve) => listener.close(resolve));
    }
  });

  test('pool admins manage their channels; secrets are shown once, never again', async () => {
    const res = await call('POST', '/api/v1/notification-channels', operator, {
      name: 'a-hook',
      type: 'webhook',
      poolId: poolA,
      config: { url: 'http://hooks.invalid/hook' },
    });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({
      type: 'webhook',
      poolId: poolA,
      hasSecret: true,
      minSeverity: 'info',
      sendResolved: true,
    });
    expect(res.json().secret).toMatch(/^[\w-]{32}$/);
    const id = res.json().id;
    const got = (await call('GET', `/api/v1/notification-channels/${id}`, operator)).json();
    expect(got.secret).toBeUndefined();
    expect(got.hasSecret).toBe(true);
    expect((await call('GET', `/api/v1/notification-channels/${id}`, monitor)).statusCode).toBe(404);
    expect((await call('GET', '/api/v1/notification-channels', monitor)).json().total).toBe(0);
    expect(
      (
        await call('PATCH', `/api/v1/notification-channels/${id}`, operator, { minSeverity: 'critical' })
      ).json().minSeverity,
    ).toBe('critical');

    const email = await call('POST', '/api/v1/notification-channels', operator, {
      name: 'a-mail',
      type: 'email',
      poolId: poolA,
      config: { to: ['ops@example.test'], smtp: { host: 'smtp.example.test', port: 2525, user: 'herd' } },
      secret: 'smtp-password',
    });
    expect(email.statusCode).toBe(201);
    expect(email.json().secret).toBeUndefined();
    expect(JSON.stringify(email.json())).not.toContain('smtp-password');

    const bad = await call('POST', '/api/v1/notification-channels', operator, {
      name: 'x',
      type: 'email',
      poolId: poolA,
      config: {},
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toMatch(/^config\.to/);
    const global = { name: 'g', type: 'webhook', config: { url: 'http://hooks.invalid/' } };
    expect((await call('POST', '/api/v1/notification-channels', operator, global)).statusCode).toBe(403);
    expect((await call('POST', '/api/v1/notification-channels', admin, global)).statusCode).toBe(201);
    expect((await call('DELETE', `/api/v1/notification-channels/${id}`, operator)).statusCode).toBe(204);
  });

  test('delivery history lists notifications of visible pools', async () => {
    const res = await call('GET', '/api/v1/notifications?status=delivered', monitor);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ items: [], total: 0 });
  });
});
