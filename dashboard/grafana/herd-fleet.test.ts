import dgram from 'node:dgram';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startIngest } from '../../ingest/ingest-service.js';
import { LiveView } from '../../ingest/live-view.js';
import { type ExpectedValues, replayAt } from '../../ingest/protocol/test-fixtures.js';
import type { MetricsStore } from '../../ingest/store/metrics-store.js';
import { createMetricsStore } from '../../ingest/store/stores.js';
import { loadConfig } from '../../lib/config.js';
import { createLogger } from '../../lib/log.js';
import { createRegistry } from '../../lib/metrics.js';
import { createTestDatabase, testInflux } from '../../lib/testing/db.js';
import { influxQuery, waitFor } from '../../lib/testing/wait.js';
import type { DatabaseHandle } from '../../schema/db.js';

/**
 * The shipped Grafana dashboard, proven against herd's own InfluxDB data: the real captured collectd packets go
 * over UDP through herd's ingest into the suite's real InfluxDB, then every template variable query and every
 * panel query runs against InfluxDB's /query with Grafana's macros substituted as Grafana does.
 */

interface Target {
  refId: string;
  rawQuery: boolean;
  query: string;
  datasource: { type: string; uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  targets?: Target[];
  datasource?: { type: string; uid: string };
}
interface Variable {
  name: string;
  type: string;
  query: string;
  multi: boolean;
  includeAll: boolean;
}
interface Dashboard {
  __inputs: Array<{ name: string; pluginId: string }>;
  time: { from: string; to: string };
  templating: { list: Variable[] };
  panels: Panel[];
}

const DASHBOARD = fileURLToPath(new URL('./herd-fleet.json', import.meta.url));
const influx = testInflux();
let database: DatabaseHandle;
let store: MetricsStore;
let stopIngest: () => Promise<void>;
let dashboard: Dashboard;

beforeAll(async () => {
  dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8'));
  database = await createTestDatabase();
  const config = loadConfig({
    HERD_DATA_DIR: '/nonexistent-herd-test',
    INFLUX_URL: influx.url,
    INFLUX_DB: influx.db,
    HERD_COLLECTD_HOST: '127.0.0.1',
    HERD_COLLECTD_PORT: '0',
    HERD_INFLUX_FLUSH_MS: '200',
  });
  const log = createLogger('silent');
  const registry = createRegistry();
  store = createMetricsStore(config, database.db, log, { registry });
  await store.start();
  const ingest = await startIngest({
    config,
    db: database.db,
    log,
    registry,
    store,
    liveView: new LiveView(),
  });
  stopIngest = () => ingest.stop();

  // Hosts (cpu, memory, load, interface, disk, df) and a guest (virt plugin, HostnameFormat uuid), sent now.
  const socket = dgram.createSocket('udp4');
  const expected: ExpectedValues[] = [];
  for (const folder of ['plain', 'virt-uuid'] as const) {
    const replay = replayAt(folder);
    for (const p of replay.packets)
      await new Promise<void>((resolve, reject) =>
        socket.send(p.bytes, ingest.port, '127.0.0.1', (e) => (e ? reject(e) : resolve())),
      );
    expected.push(...replay.expected.filter((r): r is ExpectedValues => r.kind === 'values'));
  }
  socket.close();
  const count = (plugin: string) => expected.filter((r) => r.plugin === plugin).length;
  await waitFor(async () => {
    const [load, virt, cpu] = await Promise.all(
      ['load_shortterm', 'virt_value', 'cpu_value'].map(
        async (m) => (await influxQuery(influx, `SELECT count(value) FROM "${m}"`))[0]?.[1] ?? 0,
      ),
    );
    // virt_value: the value lists of the virt plugin with one value (cpu time, memory).
    const virtSingle = expected.filter((r) => r.plugin === 'virt' && r.values.length === 1).length;
    return load === count('load') && cpu === count('cpu') && virt === virtSingle;
  }, 20_000);
});
afterAll(async () => {
  await stopIngest?.();
  await store?.stop();
  await database?.close();
});

/** Grafana's rounding of the auto interval (public/app/core/utils/rangeutil `roundInterval`), up to 1 h. */
function roundInterval(ms: number): number {
  const steps: Array<[number, number]> = [
    [15, 10],
    [35, 20],
    [75, 50],
    [150, 100],
    [350, 200],
    [750, 500],
    [1500, 1000],
    [3500, 2000],
    [7500, 5000],
    [12500, 10000],
    [17500, 15000],
    [25000, 20000],
    [45000, 30000],
    [90000, 60000],
    [210000, 120000],
    [450000, 300000],
    [750000, 600000],
    [1050000, 900000],
    [1500000, 1200000],
    [2700000, 1800000],
  ];
  return steps.find(([below]) => ms < below)?.[1] ?? 3600000;
}

/** Grafana's regex escape of a variable value (kbn.regexEscape). */
const regexEscape = (value: string) => value.replace(/[\\^$*+?.()|[\]{}/]/g, '\\$&');

/** The InfluxDB datasource's interpolation of a multi-value / include-all variable in a regex: `(a|b)`. */
function interpolateValues(variable: Variable, values: string[]): string {
  if (!variable.multi && !variable.includeAll) return values[0];
  const escaped = values.map(regexEscape);
  return escaped.length === 1 ? escaped[0] : `(${escaped.join('|')})`;
}

/** `now-1h` style relative range → [from, to] in ms, and Grafana's `$timeFilter` for it. */
function timeRange(range: { from: string; to: string }, now: number) {
  const rel = /^now-(\d+)([smhd])$/.exec(range.from);
  if (!rel || range.to !== 'now')
    throw new Error(`test handles now-N ranges only, not ${JSON.stringify(range)}`);
  const unit = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[rel[2] as 's' | 'm' | 'h' | 'd'];
  const from = now - Number(rel[1]) * unit;
  // The InfluxDB datasource writes relative ranges as InfluxQL's now(), with no upper bound for "now".
  return { from, to: now, timeFilter: `time >= now() - ${rel[1]}${rel[2]}` };
}

function substitute(query: string, vars: Map<string, string>, range: ReturnType<typeof timeRange>): string {
  // Grafana's auto interval: the range over the panel's data points (its width; 1000 here), rounded.
  const intervalMs = roundInterval((range.to - range.from) / 1000);
  const interval = intervalMs % 1000 === 0 ? `${intervalMs / 1000}s` : `${intervalMs}ms`;
  let out = query
    .replaceAll('$__interval_ms', String(intervalMs))
    .replaceAll('$__interval', interval)
    .replaceAll('$interval', interval)
    .replaceAll('$timeFilter', range.timeFilter)
    .replaceAll('$__from', String(range.from))
    .replaceAll('$__to', String(range.to));
  for (const [name, value] of vars)
    out = out.replace(new RegExp(`\\$${name}\\b|\\[\\[${name}\\]\\]`, 'g'), value);
  return out;
}

async function run(
  q: string,
): Promise<Array<{ name: string; tags?: Record<string, string>; values: unknown[][] }>> {
  const res = await fetch(
    `${influx.url}/query?db=${encodeURIComponent(influx.db)}&epoch=ms&q=${encodeURIComponent(q)}`,
  );
  expect(res.status, q).toBe(200);
  const body = (await res.json()) as { results: Array<{ series?: any[]; error?: string }> };
  expect(body.results, q).toHaveLength(1);
  expect(body.results[0].error, q).toBeUndefined();
  return body.results[0].series ?? [];
}

const targets = () =>
  dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p, target: t })));

test('the dashboard is an importable InfluxDB dashboard: one datasource input, raw InfluxQL targets', () => {
  expect(dashboard.__inputs).toEqual([
    expect.objectContaining({ name: 'DS_INFLUXDB', pluginId: 'influxdb' }),
  ]);
  expect(dashboard.templating.list.map((v) => v.name)).toEqual(['host', 'guest']);
  const titles = dashboard.panels.filter((p) => p.type !== 'row').map((p) => p.title);
  for (const title of ['Load', 'CPU', 'Memory', 'Network', 'Disk I/O', 'Guest CPU'])
    expect(titles).toContain(title);
  expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length);
  for (const { panel, target } of targets()) {
    // Grafana's import replaces `${DS_INFLUXDB}` with the datasource the operator picks.
    expect(target.datasource, panel.title).toEqual({
      type: 'influxdb',
      uid: `\${${dashboard.__inputs[0].name}}`,
    });
    expect(target.rawQuery, panel.title).toBe(true);
  }
});

test('every variable and every panel query returns series with values from what herd stored', async () => {
  const range = timeRange(dashboard.time, Date.now());
  const vars = new Map<string, string>();
  const values = new Map<string, string[]>();
  for (const variable of dashboard.templating.list) {
    expect(variable.type).toBe('query');
    const series = await run(variable.query);
    // SHOW TAG VALUES answers [key, value] rows.
    const found = series.flatMap((s) => s.values.map((row) => String(row[1])));
    expect(found.length, variable.query).toBeGreaterThan(0);
    values.set(variable.name, found);
    // "All", as the dashboard opens.
    vars.set(variable.name, interpolateValues(variable, found));
  }
  expect(values.get('host')).toEqual(['plain-host', 'virt-uuid-host']);
  const guest = replayAt('virt-uuid').expected.find((r) => r.plugin === 'virt')!.host;
  expect(values.get('guest')).toEqual([guest]);

  for (const { panel, target } of targets()) {
    const q = substitute(target.query, vars, range);
    expect(q, `${panel.title}: a macro or variable left`).not.toMatch(/\$(?!\/)|\[\[/);
    const series = await run(q);
    const where = `${panel.title} ${target.refId}: ${q}`;
    expect(series.length, where).toBeGreaterThan(0);
    const numbers = series
      .flatMap((s) => s.values.flatMap((row) => row.slice(1)))
      .filter((v) => typeof v === 'number');
    expect(numbers.length, where).toBeGreaterThan(0);
    expect(numbers.every(Number.isFinite), where).toBe(true);
  }
});

test('the host and guest variables filter: one host gives its series only, an unknown host none', async () => {
  const range = timeRange(dashboard.time, Date.now());
  const [host, guest] = dashboard.templating.list;
  const load = targets().find(({ panel }) => panel.title === 'Load')!.target.query;
  const only = await run(
    substitute(
      load,
      new Map([
        [host.name, interpolateValues(host, ['plain-host'])],
        [guest.name, ''],
      ]),
      range,
    ),
  );
  expect(only.map((s) => s.tags?.host)).toEqual(['plain-host']);
  const none = await run(
    substitute(
      load,
      new Map([
        [host.name, interpolateValues(host, ['no-such-host'])],
        [guest.name, ''],
      ]),
      range,
    ),
  );
  expect(none).toEqual([]);
});
