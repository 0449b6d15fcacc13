import { afterAll, beforeAll, expect, test } from 'vitest';
import { PostgresRollups } from '../../ingest/store/postgres-rollups.js';
import { PostgresStore } from '../../ingest/store/postgres-store.js';
import type { Point } from '../../ingest/types.js';
import { loadConfig } from '../../lib/config.js';
import { createLogger } from '../../lib/log.js';
import { createTestDatabase } from '../../lib/testing/db.js';
import { insertHost } from '../../lib/testing/fleet.js';
import { createPool } from '../../lib/testing/users.js';
import type { DatabaseHandle } from '../../schema/db.js';
import { metricProblem } from '../alerts/alert-rule.js';
import { insertRule } from '../alerts/alerts.repository.js';
import { type Alerting, startAlerting } from '../alerts/start-alerting.js';
import { ManualClock } from '../alerts/test-support.js';
import { quotaPoint } from './capacity-sampler.js';
import { DAY_SECONDS } from './forecast.js';
import { createForecastSource } from './forecast-source.js';

const log = createLogger('silent');
const NOW = Math.floor(Date.now() / 1000);
const START = NOW - 30 * DAY_SECONDS;
const days = (t: number) => (t - NOW) / DAY_SECONDS;
const daily = (t: number) => Math.sin((2 * Math.PI * t) / DAY_SECONDS);

let database: DatabaseHandle;
let store: PostgresStore;
let alerting: Alerting;
const pools = { rising: 0, flat: 0 };

/** Memory used of one host (16 GiB): `f(days from now)` MiB with a ±200 MiB daily swing, every 10 minutes. */
function memory(host: string, f: (d: number) => number): Point[] {
  const points: Point[] = [];
  for (let t = START; t < NOW; t += 600)
    points.push({
      measurement: 'herd_host',
      tags: { host },
      fields: { mem_used: f(days(t)) + 200 * daily(t) },
      time: t,
    });
  return points;
}

beforeAll(async () => {
  database = await createTestDatabase();
  const db = database.db;
  pools.rising = await createPool(db, { name: 'rising' });
  pools.flat = await createPool(db, { name: 'flat' });
  await insertHost(db, { poolId: pools.rising, cpus: 4, memoryMiB: 16_384, hostname: 'rise-1' });
  await insertHost(db, { poolId: pools.flat, cpus: 4, memoryMiB: 16_384, hostname: 'flat-1' });
  await db.insertInto('quotas').values({ pool_id: pools.rising, user_id: null, vcpus: 100 }).execute();
  const config = loadConfig({ HERD_DATA_DIR: '/nonexistent-herd-test' });
  store = new PostgresStore({
    db,
    batchSize: 5000,
    flushMs: 50,
    memoryPoints: 100_000,
    retentionDays: 100,
    log,
  });
  await store.start();
  // Rising: 12,384 MiB now, +400 a day: 16,384 in about 10 days. Flat: 8,000 MiB.
  store.write(memory('rise-1', (d) => 12_384 + 400 * d));
  store.write(memory('flat-1', () => 8000));
  // The pool's vCPU quota: 70 used now, +1 a day, of 100: full in 30 days, not within 14.
  const quota: Point[] = [];
  for (let t = START; t < NOW; t += 600) {
    const used = { vcpus: 70 + days(t), memoryMiB: 0, storageGiB: 0, nics: 0, vms: 0 };
    const limits = { vcpus: 100, memoryMiB: null, storageGiB: null, nics: null, vms: null };
    quota.push(quotaPoint({ poolId: pools.rising, userId: null, used, limits }, t));
  }
  store.write(quota);
  await store.flush();
  const rollups = new PostgresRollups(db, config.rollups, log);
  await rollups.refresh(START - 3600, NOW);
  const clock = new ManualClock(NOW * 1000);
  alerting = await startAlerting({
    db,
    log,
    store,
    forecast: createForecastSource({ db, config, store, rollups }, clock.read),
    clock: clock.read,
    autoRun: false,
  });
}, 120_000);

afterAll(async () => {
  await alerting?.stop();
  await store?.stop();
  await database?.close();
});

async function rule(name: string, metric: Record<string, string>, threshold: number) {
  return insertRule(database.db, {
    name,
    scope: 'global',
    metric: JSON.stringify({ source: 'forecast', ...metric }),
    condition: 'below',
    threshold,
  });
}

test('"pool memory full within 14 days" fires on the rising pool, not on the flat one; the quota rule stays ok', async () => {
  const memoryRule = await rule(
    'pool memory full within 14 days',
    {
      field: 'daysUntilFull',
      resource: 'memory',
      kind: 'use',
    },
    14,
  );
  const quotaRule = await rule(
    'vCPU quota full within 14 days',
    {
      field: 'daysUntilFull',
      resource: 'cpu',
      kind: 'quota',
    },
    14,
  );
  const quotaLater = await rule(
    'vCPU quota full within 45 days',
    {
      field: 'daysUntilFullEarliest',
      resource: 'cpu',
      kind: 'quota',
    },
    45,
  );
  await alerting.evaluate();
  const instances = await database.db
    .selectFrom('alert_instances')
    .select(['rule_id', 'subject', 'state', 'value', 'labels', 'pool_id'])
    .where('rule_id', 'in', [memoryRule, quotaRule, quotaLater])
    .execute();
  const of = (ruleId: number) => instances.filter((i) => i.rule_id === ruleId);

  // Only instances that left ok are stored: the flat pool's (never full: Infinity) is not.
  expect(of(memoryRule).map((i) => [i.subject, i.state])).toEqual([
    [`forecast:${pools.rising}:memory:use`, 'firing'],
  ]);
  const [fired] = of(memoryRule);
  expect(fired.pool_id).toBe(pools.rising);
  expect(fired.value).toBeGreaterThan(8);
  expect(fired.value).toBeLessThan(11);
  expect(fired.labels).toMatchObject({ pool: 'rising', resource: 'memory', kind: 'use' });

  expect(of(quotaRule)).toEqual([]);
  expect(of(quotaLater).map((i) => [i.subject, i.state])).toEqual([
    [`forecast:${pools.rising}:total:vcpus:quota`, 'firing'],
  ]);
  // Noise-free history: the earliest day is the likely one, give or take the hour.
  expect(of(quotaLater)[0].value).toBeGreaterThan(28.5);
  expect(of(quotaLater)[0].value).toBeLessThan(30.5);
});

test('a forecast rule names what it needs', () => {
  expect(
    metricProblem({ source: 'forecast', field: 'daysUntilFull', resource: 'memory', kind: 'use' }, 'pool'),
  ).toBeNull();
  expect(metricProblem({ source: 'forecast', field: 'x', resource: 'memory', kind: 'use' }, 'pool')).toMatch(
    /^metric.field/,
  );
  expect(
    metricProblem({ source: 'forecast', field: 'daysUntilFull', resource: 'disk', kind: 'use' }, 'pool'),
  ).toMatch(/^metric.resource/);
  expect(metricProblem({ source: 'forecast', field: 'daysUntilFull', resource: 'cpu' }, 'global')).toMatch(
    /^metric.kind/,
  );
  expect(
    metricProblem({ source: 'forecast', field: 'daysUntilFull', resource: 'cpu', kind: 'use' }, 'host'),
  ).toMatch(/^scope/);
});
