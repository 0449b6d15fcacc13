import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ROLES, type RunningHerd, startHerd } from '../app/server.js';
import { connect, isDatabaseUnavailable } from '../schema/db.js';
import { loadConfig } from './config.js';
import { freePort } from './embedded-postgres.js';
import { createLogger } from './log.js';
import { writeTestHost } from './testing/libvirt-hosts.js';
import { herdEnvOnPair, type PgReplicaPair, startPgReplicaPair } from './testing/pg-replica.js';
import { waitFor } from './testing/wait.js';

/**
 * PostgreSQL failover under herd: a real primary with a synchronous streaming standby, herd (every role, in this
 * process) on the multi-host DATABASE_URL `postgres://…@primary,standby/…?target_session_attrs=read-write`, API
 * writes going on and a task queued. The primary stops as in a crash (immediate), the standby is promoted. While
 * there is no primary herd answers 503 JSON (never a 500, no crash); it goes on by itself on the promoted
 * standby; every write answered 201 before the stop is there; the task queued before the stop completes, and the
 * worker takes the next.
 */

let pair: PgReplicaPair;
let dir: string;
let herd: RunningHerd;
let token: string;

beforeAll(async () => {
  pair = await startPgReplicaPair({ synchronous: true });
  dir = await mkdtemp(path.join(tmpdir(), 'herd-failover-'));
  await mkdir(path.join(dir, 'save'));
  const adminPassword = randomBytes(9).toString('hex');
  const config = loadConfig({
    ...herdEnvOnPair(pair, dir, adminPassword),
    HERD_SAVE_DIR: path.join(dir, 'save'),
  });
  herd = await startHerd(config, createLogger(process.env.HERD_TEST_LOG_LEVEL ?? 'silent'), {
    roles: [...ROLES],
  });
  const session = await call('POST', '/api/v1/session', { username: 'admin', password: adminPassword });
  token = session.body.token;
}, 180_000);
afterAll(async () => {
  await herd?.stop();
  await pair?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function call(method: string, url: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${herd.httpUrl}${url}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

test('the host is chosen by target_session_attrs, in the URL order, past a host that does not answer', async () => {
  const dead = await freePort();
  const [P, S] = [pair.primary.port, pair.standby.port];
  const urlOver = (ports: number[], attrs: string) =>
    pair.url.replace(
      /@[^/]+\/postgres\?.*$/,
      `@${ports.map((p) => `127.0.0.1:${p}`).join(',')}/postgres?target_session_attrs=${attrs}`,
    );
  const portOf = async (ports: number[], attrs: string) => {
    const handle = connect(urlOver(ports, attrs), { max: 1 });
    try {
      const { rows } = await handle.pool.query<{ port: number }>('SELECT inet_server_port() AS port');
      return rows[0]!.port;
    } finally {
      await handle.close();
    }
  };
  expect(await portOf([dead, S, P], 'read-write')).toBe(P);
  expect(await portOf([S, P], 'primary')).toBe(P);
  expect(await portOf([P, S], 'standby')).toBe(S);
  expect(await portOf([P, S], 'read-only')).toBe(S);
  expect(await portOf([P, dead, S], 'prefer-standby')).toBe(S);
  expect(await portOf([dead, P], 'prefer-standby')).toBe(P);
  expect(await portOf([dead, S, P], 'any')).toBe(S);

  const handle = connect(urlOver([dead, P], 'standby'), { max: 1 });
  try {
    const error = await handle.pool.query('SELECT 1').then(
      () => undefined,
      (err: Error) => err,
    );
    expect(isDatabaseUnavailable(error)).toBe(true);
    expect(error?.message).toMatch(
      new RegExp(
        `fits target_session_attrs=standby \\(127.0.0.1:${dead}: connect ECONNREFUSED.*; 127.0.0.1:${P}: primary\\)`,
      ),
    );
    expect(error?.message).not.toContain(new URL(pair.primary.url).password);
  } finally {
    await handle.close();
  }
});

const created = (res: { status: number; body: any }, what: string) => {
  if (res.status !== 201 && res.status !== 202)
    throw new Error(`${what}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
};

test('primary stops, standby promoted: 503 meanwhile, herd goes on by itself, nothing committed is lost', async () => {
  const rack = created(
    await call('POST', '/api/v1/pools', { name: 'fo-rack', kind: 'hardware', parentId: 1 }),
    'rack',
  );
  const team = created(
    await call('POST', '/api/v1/pools', { name: 'fo-team', kind: 'vm', parentId: rack.id }),
    'team',
  );
  const uri = await writeTestHost(dir, { name: 'fo-h1', cpus: 16, memoryMiB: 65536 });
  created(await call('POST', '/api/v1/hosts', { uri, poolId: rack.id }), 'host');
  const vm = created(
    await call('POST', '/api/v1/vms', { name: 'fo-vm', poolId: team.id, vcpus: 1, memoryMiB: 128, nics: 0 }),
    'vm',
  );

  // Writes (pools) and reads from 3 clients; each answer kept with whether the primary was stopped by then.
  let primaryStopped = false;
  let running = true;
  const committedBeforeStop: number[] = [];
  const committedAfter: number[] = [];
  const answers: Array<{ status: number; body: any; duringOutage: boolean }> = [];
  let n = 0;
  const client = async () => {
    while (running) {
      const i = n++;
      const res =
        i % 2 === 0
          ? await call('POST', '/api/v1/pools', { name: `fo-load-${i}`, kind: 'vm', parentId: rack.id })
          : await call('GET', '/api/v1/pools');
      answers.push({ ...res, duringOutage: primaryStopped });
      if (res.status === 201) (primaryStopped ? committedAfter : committedBeforeStop).push(res.body.id);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const clients = [client(), client(), client()];
  await waitFor(() => committedBeforeStop.length >= 10, 30_000, 50);

  const queuedTask = created(
    await call('POST', `/api/v1/vms/${vm.id}/actions`, { action: 'start' }),
    'start',
  ).taskId;
  primaryStopped = true;
  await pair.stopPrimary('immediate');
  // No primary for a while: every answer meanwhile is a 503.
  await waitFor(() => answers.filter((a) => a.duringOutage && a.status === 503).length >= 5, 30_000, 50);
  await pair.promoteStandby();
  await waitFor(() => committedAfter.length >= 5, 60_000, 100);
  running = false;
  await Promise.all(clients);

  const failures = answers.filter((a) => a.status >= 300);
  for (const a of failures) {
    expect(a.status, JSON.stringify(a.body)).toBe(503);
    expect(a.body).toEqual({
      error: 'unavailable',
      message: 'the database is unavailable; try again shortly',
    });
  }
  expect(failures.every((a) => a.duringOutage)).toBe(true);

  // herd now writes to the promoted standby.
  const { rows: where } = await herd.database.pool.query<{ port: number }>(
    'SELECT inet_server_port() AS port',
  );
  expect(where[0]!.port).toBe(pair.standby.port);

  // Every write answered 201 is on the new primary: before the stop (synchronous replication) and after.
  const check = new pg.Client(pair.standby.url);
  await check.connect();
  try {
    const ids = [...committedBeforeStop, ...committedAfter];
    const { rows } = await check.query<{ id: number }>('SELECT id FROM pools WHERE id = ANY($1::int[])', [
      ids,
    ]);
    expect(rows.map((r) => Number(r.id)).sort((a, b) => a - b)).toEqual(ids.sort((a, b) => a - b));
  } finally {
    await check.end();
  }

  // The task queued before the stop completes; the worker (graphile-worker, its LISTEN) takes the next one.
  const taskState = async (id: number) => (await call('GET', `/api/v1/tasks/${id}`)).body.state;
  await waitFor(async () => (await taskState(queuedTask)) === 'done', 60_000, 200);
  const next = created(
    await call('POST', `/api/v1/vms/${vm.id}/actions`, {
      action: 'shutdown',
      force: true,
      timeoutSeconds: 1,
    }),
    'shutdown',
  ).taskId;
  await waitFor(async () => (await taskState(next)) === 'done', 60_000, 200);
}, 240_000);
