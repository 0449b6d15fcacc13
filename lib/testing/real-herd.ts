import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFile, truncate, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { ROLES, type RunningHerd, startHerd } from '../../app/server.js';
import { loadConfig } from '../config.js';
import { createLogger } from '../log.js';
import { createTestDatabase, testInflux } from './db.js';
import { HOST_FROM_GUEST } from './hypervisor.js';
import { waitFor } from './wait.js';

const PLUGINS = path.resolve(import.meta.dirname, '../../collectd-plugins');

/** herd with every role (ingest, API, worker) on a database and InfluxDB database of its own, HTTP on a free port. */
export interface TestHerd {
  herd: RunningHerd;
  url: string;
  adminPassword: string;
  /** The super-admin's bearer token. */
  token: string;
  /** A JSON request as the super-admin; answers status and body. */
  request(method: string, url: string, payload?: unknown): Promise<{ status: number; body: any }>;
  close(): Promise<void>;
}

export async function startTestHerd(dir: string, env: NodeJS.ProcessEnv = {}): Promise<TestHerd> {
  const database = await createTestDatabase();
  const influx = testInflux();
  const adminPassword = randomBytes(9).toString('hex');
  const authFile = path.join(dir, 'collectd-auth');
  await writeFile(authFile, `hv-agent: ${COLLECTD_PASSWORD}\n`);
  const config = loadConfig({
    HERD_DATA_DIR: dir,
    DATABASE_URL: database.url,
    INFLUX_URL: influx.url,
    INFLUX_DB: influx.db,
    HERD_HTTP_PORT: '0',
    HERD_COLLECTD_HOST: '127.0.0.1',
    HERD_COLLECTD_PORT: '0',
    HERD_COLLECTD_SECURITY_LEVEL: 'sign',
    HERD_COLLECTD_AUTH_FILE: authFile,
    HERD_INFLUX_FLUSH_MS: '200',
    HERD_ADMIN_PASSWORD: adminPassword,
    HERD_LOG_LEVEL: process.env.HERD_TEST_LOG_LEVEL ?? 'silent',
    ...env,
  });
  const herd = await startHerd(config, createLogger(config.logLevel), { roles: [...ROLES] });
  const http = herd.http!;
  const session = await http.inject({
    method: 'POST',
    url: '/api/v1/session',
    payload: { username: 'admin', password: adminPassword },
  });
  const token = session.json().token as string;
  return {
    herd,
    url: herd.httpUrl!,
    adminPassword,
    token,
    async request(method, url, payload) {
      const res = await http.inject({
        method: method as 'GET',
        url,
        headers: { authorization: `Bearer ${token}` },
        ...(payload === undefined ? {} : { payload: payload as object }),
      });
      return { status: res.statusCode, body: res.body ? res.json() : undefined };
    },
    async close() {
      await herd.stop();
      await database.close();
    },
  };
}

/** The password collectd signs with, which `startTestHerd` writes to herd's auth file for user `hv-agent`. */
export const COLLECTD_PASSWORD = 'hv-s3cret';

/**
 * A hardware pool `<prefix>-rack` holding the real hosts at `uris` (added through the API) and a VM pool
 * `<prefix>-team` in it; answers their ids and the hosts' hostnames.
 */
export async function realFleet(th: TestHerd, prefix: string, uris: string[]) {
  const create = async (body: object) => {
    const res = await th.request('POST', '/api/v1/pools', body);
    if (res.status !== 201) throw new Error(`pool: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.id as number;
  };
  const rackId = await create({ name: `${prefix}-rack`, kind: 'hardware', parentId: 1 });
  const teamId = await create({ name: `${prefix}-team`, kind: 'vm', parentId: rackId });
  const hosts: Array<{ id: number; hostname: string }> = [];
  for (const uri of uris) {
    const res = await th.request('POST', '/api/v1/hosts', { uri, poolId: rackId });
    if (res.status !== 201) throw new Error(`host ${uri}: ${res.status} ${JSON.stringify(res.body)}`);
    hosts.push({ id: res.body.id, hostname: res.body.hostname });
  }
  return { rackId, teamId, hosts };
}

/**
 * The real collectd daemon on a libvirt host with herd's shipped fragment (collectd-plugins/collectd.conf): its
 * virt plugin reads the guests of `libvirtUri` every `intervalSeconds` (domains re-listed as often) and the
 * network plugin signs what it sends to herd's listener (`startTestHerd` knows the password).
 */
export async function startHostCollectd(
  dir: string,
  options: { hostname: string; libvirtUri: string; port: number; intervalSeconds: number },
): Promise<{ stop(): Promise<void> }> {
  const fragment = (await readFile(path.join(PLUGINS, 'collectd.conf'), 'utf8'))
    .replace('"HERD_SERVER" "25826"', `"127.0.0.1" "${options.port}"`)
    .replace('"HERD_USERNAME"', '"hv-agent"')
    .replace('"HERD_PASSWORD"', `"${COLLECTD_PASSWORD}"`)
    .replace('"qemu:///system"', `"${options.libvirtUri}"`)
    .replace(/RefreshInterval \d+/, `RefreshInterval ${options.intervalSeconds}`);
  await writeFile(path.join(dir, 'herd.conf'), fragment);
  const conf = path.join(dir, 'collectd.conf');
  await writeFile(
    conf,
    [
      `Hostname "${options.hostname}"`,
      'FQDNLookup false',
      `BaseDir "${dir}"`,
      `PIDFile "${dir}/collectd.pid"`,
      'PluginDir "/usr/lib/collectd"',
      'TypesDB "/usr/share/collectd/types.db"',
      `Interval ${options.intervalSeconds}`,
      `Include "${dir}/herd.conf"`,
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn('/usr/sbin/collectd', ['-f', '-C', conf], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** The average of a graph line's bucket averages whose buckets start within [from, to) (seconds). */
export function meanOver(
  line: { points: Array<[number, number | null, number | null]> } | undefined,
  from: number,
  to: number,
): { mean: number; n: number } {
  const values = (line?.points ?? [])
    .filter(([t, avg]) => t >= from && t < to && avg !== null)
    .map(([, avg]) => avg as number);
  return { mean: values.reduce((a, b) => a + b, 0) / Math.max(1, values.length), n: values.length };
}

/**
 * A gate a guest waits at before its busy phase: its URL answers 404 until `open()`, then 200, so a guest script
 * `until wget -q -O /dev/null <url>; do sleep 1; done` goes on when the test says.
 */
export async function startGate(): Promise<{ url: string; open(): void; close(): Promise<void> }> {
  let open = false;
  const server = http.createServer((req, res) => {
    req.resume();
    res.statusCode = open ? 200 : 404;
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://${HOST_FROM_GUEST}:${(server.address() as AddressInfo).port}/go`,
    open: () => {
      open = true;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The guest script line that waits at a gate. */
export const waitAtGate = (url: string) => `until wget -q -O /dev/null ${url}; do sleep 1; done`;

/** Waits until a task is done; a failed task throws with its error. */
export async function waitForTask(th: TestHerd, taskId: number, timeoutMs = 180_000): Promise<void> {
  await waitFor(
    async () => {
      const task = (await th.request('GET', `/api/v1/tasks/${taskId}`)).body;
      if (task.state === 'failed') throw new Error(`task ${taskId} (${task.action}) failed: ${task.error}`);
      return task.state === 'done';
    },
    timeoutMs,
    500,
  );
}

/**
 * A disk for a real guest: an empty raw file of `sizeMiB` on the hosts' shared storage (`sharedDir`), recorded
 * as a volume of a storage pool of hardware pool `rackId` (the storage API has its own tests). Answers the
 * volume's id and the file.
 */
export async function sharedVolume(
  th: TestHerd,
  options: { rackId: number; sharedDir: string; prefix: string; sizeMiB: number },
): Promise<{ id: number; path: string }> {
  const file = path.join(options.sharedDir, `${options.prefix}-${randomUUID()}.img`);
  await writeFile(file, '');
  await truncate(file, options.sizeMiB * 1024 * 1024);
  const db = th.herd.database.db;
  const storage = await db
    .insertInto('storage_pools')
    .values({ pool_id: options.rackId, type: 'nfs', name: `${options.prefix}-shared` })
    .returning('id')
    .executeTakeFirstOrThrow();
  const volume = await db
    .insertInto('volumes')
    .values({ storage_pool_id: storage.id, name: path.basename(file), path: file, size_gib: 1 })
    .returning('id')
    .executeTakeFirstOrThrow();
  return { id: volume.id, path: file };
}
