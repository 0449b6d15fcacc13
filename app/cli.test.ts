import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { get as httpGet, type IncomingMessage } from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { fixturePackets, replayAt, retimePacket } from '../ingest/protocol/test-fixtures.js';
import { createTestDatabase, testInflux } from '../lib/testing/db.js';
import { influxQuery, waitFor } from '../lib/testing/wait.js';
import type { DatabaseHandle } from '../schema/db.js';

/** The built command line (`npm test` builds first), as users run it. */
const CLI = path.resolve('dist/app/cli.js');

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'herd-cli-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

test('herd decode prints one JSON object per value list and fails on a bad file', async () => {
  const good = fixturePackets('plain')[0].path;
  const bad = path.join(dir, 'bad.bin');
  await writeFile(bad, Buffer.from([0x00, 0x06, 0x00, 0xff, 1, 2, 3]));
  const ok = spawnSync(process.execPath, [CLI, 'decode', good], { encoding: 'utf8' });
  expect(ok.status).toBe(0);
  const lines = ok.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  expect(lines.length).toBeGreaterThan(5);
  expect(lines[0]).toMatchObject({ kind: 'values', host: expect.any(String), values: expect.any(Array) });
  const failed = spawnSync(process.execPath, [CLI, 'decode', good, bad], { encoding: 'utf8' });
  expect(failed.status).toBe(1);
  expect(failed.stderr).toContain('bad.bin');
});

test('herd with a bad variable exits 1 listing it on one line', () => {
  const r = spawnSync(process.execPath, [CLI, 'migrate'], {
    encoding: 'utf8',
    env: { ...process.env, HERD_HTTP_PORT: 'x', HERD_COLLECTD_SECURITY_LEVEL: 'weird' },
  });
  expect(r.status).toBe(1);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(r.stderr).toContain('HERD_HTTP_PORT');
  expect(r.stderr).toContain('HERD_COLLECTD_SECURITY_LEVEL');
});

test('herd serve on a port in use, or with a types.db that is not there: one line saying what to do, exit 1', async () => {
  const database: DatabaseHandle = await createTestDatabase();
  const busy = net.createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  const port = (busy.address() as net.AddressInfo).port;
  const serve = (env: Record<string, string>) =>
    spawnSync(process.execPath, [CLI, 'serve'], {
      encoding: 'utf8',
      timeout: 60_000,
      env: {
        ...process.env,
        HERD_DATA_DIR: path.join(dir, 'data-fail'),
        DATABASE_URL: database.url,
        HERD_HTTP_HOST: '127.0.0.1',
        HERD_HTTP_PORT: '0',
        HERD_COLLECTD_HOST: '127.0.0.1',
        HERD_COLLECTD_PORT: '0',
        HERD_LOG_LEVEL: 'warn',
        ...env,
      },
    });
  try {
    const inUse = serve({ HERD_HTTP_PORT: String(port) });
    expect(inUse.status).toBe(1);
    const lines = inUse.stderr.trim().split('\n');
    expect(lines.at(-1)).toBe(
      `herd: 127.0.0.1:${port} is already in use: stop what listens there, or choose another port (HERD_HTTP_PORT, HERD_COLLECTD_PORT)`,
    );
    expect(inUse.stderr).not.toMatch(/\n\s+at /);
    const noTypes = serve({ HERD_COLLECTD_TYPES_DB: path.join(dir, 'no-such-types.db') });
    expect(noTypes.status).toBe(1);
    expect(noTypes.stderr.trim().split('\n').at(-1)).toMatch(
      /^herd: cannot read types.db .*no-such-types.db: ENOENT/,
    );
    expect(noTypes.stderr).not.toMatch(/\n\s+at /);
  } finally {
    busy.close();
    await database.close();
  }
});

test('herd serve: health, login, collectd packets into InfluxDB, clean stop', async () => {
  const database: DatabaseHandle = await createTestDatabase();
  const influx = testInflux();
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, [CLI, 'serve'], {
    env: {
      ...process.env,
      HERD_DATA_DIR: path.join(dir, 'data'),
      DATABASE_URL: database.url,
      INFLUX_URL: influx.url,
      INFLUX_DB: influx.db,
      HERD_HTTP_PORT: '0',
      HERD_COLLECTD_HOST: '127.0.0.1',
      HERD_COLLECTD_PORT: '0',
      HERD_ADMIN_PASSWORD: 'first-start-secret',
      HERD_INFLUX_FLUSH_MS: '200',
      HERD_LOG_LEVEL: 'info',
    },
  });
  let output = '';
  child.stdout.on('data', (d) => {
    output += d;
  });
  child.stderr.on('data', (d) => {
    output += d;
  });
  try {
    let http = '';
    let udpPort = 0;
    let retentionHours = 0;
    const logLines = () =>
      output
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line));
    await waitFor(() => {
      for (const entry of logLines()) {
        if (entry.msg === 'HTTP API listening') http = entry.address;
        if (entry.msg === 'collectd listener bound') udpPort = entry.port;
        if (entry.component === 'influx-store' && entry.retentionHours) retentionHours = entry.retentionHours;
      }
      return http !== '' && udpPort > 0 && retentionHours > 0;
    }, 30_000);
    expect(retentionHours).toBe(48);
    expect(output).not.toContain('first-start-secret');

    const health = await fetch(`${http}/api/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ ok: true, database: true, influx: true, ingest: true });
    expect((await fetch(`${http}/api/v1/pools`)).status).toBe(401);
    const login = await fetch(`${http}/api/v1/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password: 'first-start-secret' }),
    });
    expect(login.status).toBe(200);
    const { token } = (await login.json()) as { token: string };
    const pools = await fetch(`${http}/api/v1/pools`, { headers: { authorization: `Bearer ${token}` } });
    expect(pools.status).toBe(200);

    // The capture as sent now, then once more as from a host whose clock is 30 days behind: InfluxDB
    // keeps the raw points 48 h, so herd drops those as too_old and says which host's clock is wrong.
    const socket = dgram.createSocket('udp4');
    const send = (bytes: Buffer) =>
      new Promise<void>((resolve, reject) =>
        socket.send(bytes, udpPort, '127.0.0.1', (e) => (e ? reject(e) : resolve())),
      );
    const replay = replayAt('plain');
    for (const p of replay.packets) await send(p.bytes);
    await waitFor(
      async () => (await influxQuery(influx, 'SELECT count(value) FROM load_shortterm'))[0]?.[1] > 0,
      15_000,
    );
    const loads = replay.expected.filter((r) => r.kind === 'values' && r.plugin === 'load');
    expect((await influxQuery(influx, 'SELECT count(value) FROM load_shortterm'))[0][1]).toBe(loads.length);

    const DAYS_BEHIND = 30;
    for (const p of replay.packets) await send(retimePacket(p.bytes, -DAYS_BEHIND * 86_400, 'plain'));
    socket.close();
    const finite = replay.expected
      .flatMap((r) => (r.kind === 'values' ? r.values : []))
      .filter(Number.isFinite);
    const tooOld = async () =>
      Number(
        /herd_metrics_dropped_points_total\{store="influx",reason="too_old"\} (\d+)/.exec(
          await (await fetch(`${http}/metrics`)).text(),
        )?.[1],
      );
    await waitFor(async () => (await tooOld()) >= finite.length, 15_000);
    expect(await tooOld()).toBe(finite.length);
    const warned = logLines().filter((e) => e.clockOffsetSeconds !== undefined);
    expect(warned).toHaveLength(1);
    expect(warned[0].host).toBe(loads[0].host);
    expect(warned[0].msg).toContain(`${DAYS_BEHIND} days behind`);
    expect(Math.abs(warned[0].clockOffsetSeconds + DAYS_BEHIND * 86_400)).toBeLessThan(600);
    expect((await influxQuery(influx, 'SELECT count(value) FROM load_shortterm'))[0][1]).toBe(loads.length);
    const metrics = await (await fetch(`${http}/metrics`)).text();
    expect(metrics).toMatch(/herd_collectd_values_total \d+/);
    expect(metrics).toMatch(/herd_collectd_kernel_drops_total 0/);

    // A client that stops reading a large file: the stop does not wait for it (the test would time out),
    // and its connection is closed.
    const stalled = await new Promise<IncomingMessage>((resolve, reject) =>
      httpGet(`${http}/vendor/vega-embed.min.js`, resolve).on('error', reject),
    );
    stalled.pause();
    const closed = new Promise<string>((resolve) => stalled.socket.once('close', () => resolve('closed')));

    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(0);
    stalled.resume();
    expect(await Promise.race([closed, new Promise((r) => setTimeout(() => r('still open'), 10_000))])).toBe(
      'closed',
    );
  } finally {
    child.kill('SIGKILL');
    await database.close();
  }
});
