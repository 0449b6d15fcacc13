import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig } from '../lib/config.js';
import { createLogger, type Logger } from '../lib/log.js';
import { createRegistry } from '../lib/metrics.js';
import { capturingLogger } from '../lib/testing/capture-log.js';
import { createTestDatabase, testInflux } from '../lib/testing/db.js';
import { influxQuery, waitFor } from '../lib/testing/wait.js';
import { startIngest } from './ingest-service.js';
import { LiveView } from './live-view.js';
import type { MetricsStore } from './store/metrics-store.js';
import { createMetricsStore } from './store/stores.js';

/**
 * The real collectd daemon (Debian's collectd-core) sends to herd over UDP on loopback; the values must
 * land in the suite's real InfluxDB, exactly as InfluxDB's own collectd service would store them.
 */

type Security = { level: 'None' } | { level: 'Sign' | 'Encrypt'; username: string; password: string };

let dir: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'herd-collectd-'));
});
afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

async function runCollectd(name: string, port: number, security: Security): Promise<ChildProcess> {
  const base = path.join(dir, name);
  const conf = path.join(dir, `${name}.conf`);
  const auth =
    security.level === 'None'
      ? ''
      : `    SecurityLevel ${security.level}\n    Username "${security.username}"\n    Password "${security.password}"\n`;
  await writeFile(
    conf,
    `Hostname "${name}"
FQDNLookup false
BaseDir "${base}"
PIDFile "${base}/collectd.pid"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
Interval 1
LoadPlugin load
LoadPlugin memory
LoadPlugin cpu
LoadPlugin network
<Plugin network>
  <Server "127.0.0.1" "${port}">
${auth}  </Server>
</Plugin>
`,
  );
  const child = spawn('collectd', ['-f', '-C', conf], { stdio: 'ignore' });
  children.push(child);
  return child;
}

async function startHerdIngest(env: Record<string, string>, log: Logger = createLogger('silent')) {
  const database = await createTestDatabase();
  const influx = testInflux();
  const config = loadConfig({
    HERD_DATA_DIR: path.join(dir, `data-${influx.db}`),
    INFLUX_URL: influx.url,
    INFLUX_DB: influx.db,
    HERD_COLLECTD_HOST: '127.0.0.1',
    HERD_COLLECTD_PORT: '0',
    HERD_INFLUX_FLUSH_MS: '200',
    ...env,
  });
  const registry = createRegistry();
  const store: MetricsStore = createMetricsStore(config, database.db, log, { registry });
  await store.start();
  const ingest = await startIngest({
    config,
    db: database.db,
    log,
    registry,
    store,
    liveView: new LiveView(),
  });
  return {
    ingest,
    influx,
    registry,
    async counter(name: string) {
      const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
      return m?.values[0]?.value ?? 0;
    },
    async close() {
      await ingest.stop();
      await store.stop();
      await database.close();
    },
  };
}

describe('real collectd → herd → real InfluxDB', () => {
  test('plain traffic lands as InfluxDB collectd-service measurements', async () => {
    const herd = await startHerdIngest({});
    try {
      const collectd = await runCollectd('plain-host', herd.ingest.port, { level: 'None' });
      await waitFor(async () => {
        const rows = await influxQuery(
          herd.influx,
          `SELECT count(value) FROM load_shortterm WHERE host = 'plain-host'`,
        );
        return (rows[0]?.[1] ?? 0) >= 2;
      }, 20_000);
      collectd.kill('SIGTERM');
      const memory = await influxQuery(
        herd.influx,
        `SELECT last(value) FROM memory_value WHERE host = 'plain-host' AND type_instance = 'used'`,
      );
      expect(memory[0][1]).toBeGreaterThan(1024 * 1024);
      const tags = await influxQuery(herd.influx, `SHOW TAG KEYS FROM cpu_value`);
      expect(tags.map((r) => r[0]).sort()).toEqual(['host', 'instance', 'type', 'type_instance']);
      expect(await herd.counter('herd_collectd_parse_errors_total')).toBe(0);
    } finally {
      await herd.close();
    }
  });

  for (const level of ['Sign', 'Encrypt'] as const) {
    test(`${level.toLowerCase()}ed traffic is accepted with the right password and rejected with a wrong one`, async () => {
      const authFile = path.join(dir, `auth-${level}`);
      await writeFile(authFile, 'alice: s3cret\n');
      const herd = await startHerdIngest({
        HERD_COLLECTD_SECURITY_LEVEL: level.toLowerCase(),
        HERD_COLLECTD_AUTH_FILE: authFile,
      });
      try {
        const good = await runCollectd(`good-${level}`, herd.ingest.port, {
          level,
          username: 'alice',
          password: 's3cret',
        });
        const bad = await runCollectd(`bad-${level}`, herd.ingest.port, {
          level,
          username: 'alice',
          password: 'wrong',
        });
        await waitFor(async () => {
          const rows = await influxQuery(
            herd.influx,
            `SELECT count(value) FROM load_shortterm WHERE host = 'good-${level}'`,
          );
          return (rows[0]?.[1] ?? 0) >= 2 && (await herd.counter('herd_collectd_auth_failures_total')) >= 2;
        }, 20_000);
        good.kill('SIGTERM');
        bad.kill('SIGTERM');
        const rejected = await influxQuery(
          herd.influx,
          `SELECT count(value) FROM load_shortterm WHERE host = 'bad-${level}'`,
        );
        expect(rejected).toEqual([]);
      } finally {
        await herd.close();
      }
    });
  }
});

test('listening beyond loopback without sign or encrypt is warned about at start, loudly', async () => {
  const authFile = path.join(dir, 'auth-exposure');
  await writeFile(authFile, 'alice: s3cret\n');
  const warnings = async (env: Record<string, string>) => {
    const { log, lines } = capturingLogger();
    const herd = await startHerdIngest(env, log);
    await herd.close();
    return lines.map((l) => JSON.parse(l)).filter((e) => e.level === 40 && e.msg.startsWith('SECURITY'));
  };
  const [open, ...more] = await warnings({ HERD_COLLECTD_HOST: '0.0.0.0' });
  expect(more).toEqual([]);
  expect(open.msg).toContain('accepts unsigned packets from anyone who can reach it');
  expect(open.msg).toContain('HERD_COLLECTD_SECURITY_LEVEL=sign');
  expect(await warnings({ HERD_COLLECTD_HOST: '127.0.0.1' })).toEqual([]);
  expect(
    await warnings({
      HERD_COLLECTD_HOST: '0.0.0.0',
      HERD_COLLECTD_SECURITY_LEVEL: 'sign',
      HERD_COLLECTD_AUTH_FILE: authFile,
    }),
  ).toEqual([]);
});
