import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { encodeValueLists } from '../ingest/protocol/encoder.js';
import { EVENT_LOOP_WINDOW_MS } from './event-loop-delay.js';
import { insertHost, insertVm } from './testing/fleet.js';
import { parsePrometheusText } from './testing/prometheus-text.js';
import { COLLECTD_PASSWORD, startTestHerd, type TestHerd } from './testing/real-herd.js';
import { sharedTempDir } from './testing/temp-dir.js';
import { waitFor } from './testing/wait.js';

/**
 * Prometheus' own linter (`promtool check metrics`, Debian's `prometheus` package) on what a running herd serves:
 * names, types, units and suffixes as Prometheus users expect. It prints one line per problem and exits 1 on any.
 */
function promtoolCheck(text: string): Promise<{ code: number; problems: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile('promtool', ['check', 'metrics'], (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(err);
      resolve({ code: typeof err?.code === 'number' ? err.code : 0, problems: `${stdout}${stderr}`.trim() });
    });
    child.stdin!.end(text);
  });
}

let dir: string;
let th: TestHerd;

beforeAll(async () => {
  dir = await sharedTempDir('herd-promtool-');
  th = await startTestHerd(dir);
  const db = th.herd.database.db;
  // A host and a VM so /metrics/fleet has series of every family, not only their TYPE lines.
  const rack = await th.request('POST', '/api/v1/pools', {
    name: 'prom-rack',
    kind: 'hardware',
    parentId: 1,
  });
  const team = await th.request('POST', '/api/v1/pools', {
    name: 'prom-team',
    kind: 'vm',
    parentId: rack.body.id,
  });
  const host = await insertHost(db, { poolId: rack.body.id, cpus: 8, memoryMiB: 16384, hostname: 'prom-hv' });
  await insertVm(db, {
    poolId: team.body.id,
    ownerId: 1,
    state: 'running',
    hostId: host,
    nics: 1,
    volumesGiB: [4],
  });
  // One value list signed, and the same unsigned (refused), so ingest's counters count something.
  const cpu = {
    host: 'prom-hv',
    plugin: 'cpu',
    pluginInstance: '0',
    type: 'percent',
    typeInstance: 'user',
    time: Date.now() / 1000,
    interval: 10,
    dsTypes: ['gauge' as const],
    values: [12.5],
  };
  const packets = [
    ...encodeValueLists([cpu], {
      security: { level: 'sign', username: 'hv-agent', password: COLLECTD_PASSWORD },
    }),
    ...encodeValueLists([cpu]),
  ];
  const socket = createSocket('udp4');
  for (const packet of packets)
    await new Promise<void>((resolve, reject) =>
      socket.send(packet, th.herd.ingest!.port, '127.0.0.1', (err) => (err ? reject(err) : resolve())),
    );
  socket.close();
  await waitFor(
    async () => {
      const text = await herdMetrics();
      // herd_event_loop_delay_seconds has series once its first window (10 s) ends.
      return (
        sample(text, 'herd_collectd_values_total') === 1 &&
        sample(text, 'herd_collectd_refused_parts_total') > 0 &&
        text.includes('\nherd_event_loop_delay_seconds{quantile="1"}')
      );
    },
    2 * EVENT_LOOP_WINDOW_MS + 10_000,
    100,
  );
}, 120_000);

afterAll(async () => {
  await th?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/**
 * The value of an unlabelled series. (prom-client writes NaN as `Nan`, which Prometheus reads but the strict
 * test parser of lib/testing/prometheus-text.ts refuses, and default metrics can be NaN right after a reset.)
 */
function sample(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

async function herdMetrics(): Promise<string> {
  const res = await th.herd.http!.inject({ method: 'GET', url: '/metrics' });
  expect(res.statusCode).toBe(200);
  return res.body;
}

test('promtool check metrics finds nothing to fault in /metrics', async () => {
  const text = await herdMetrics();
  if (process.env.HERD_DUMP_METRICS)
    (await import('node:fs')).writeFileSync(process.env.HERD_DUMP_METRICS, text);
  // The families a reader of /metrics looks for are there (the check is not passing on an empty page).
  expect(text).toContain('# TYPE herd_process_process_cpu_seconds_total counter\n');
  expect(sample(text, 'herd_collectd_values_total')).toBe(1);
  expect(await promtoolCheck(text)).toEqual({ code: 0, problems: '' });
});

test('promtool check metrics finds nothing to fault in /metrics/fleet', async () => {
  const res = await th.herd.http!.inject({
    method: 'GET',
    url: '/metrics/fleet',
    headers: { authorization: `Bearer ${th.token}` },
  });
  expect(res.statusCode).toBe(200);
  expect(parsePrometheusText(res.body).find('herd_vm_vcpus').length).toBe(1);
  expect(await promtoolCheck(res.body)).toEqual({ code: 0, problems: '' });
});
