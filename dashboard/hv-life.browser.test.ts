import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type RunningHerd, startHerd } from '../app/server.js';
import { loadConfig } from '../lib/config.js';
import { createLogger } from '../lib/log.js';
import { CHROMIUM, compileDashboard } from '../lib/testing/browser.js';
import { signIn } from '../lib/testing/dashboard-pages.js';
import { createTestDatabase } from '../lib/testing/db.js';
import { guestCmdline, sharedHypervisor } from '../lib/testing/hypervisor.js';
import { waitFor } from '../lib/testing/wait.js';

/**
 * The dashboard follows a VM changed outside herd on a real libvirtd: `virsh suspend` shows "paused" on the VM's
 * page within about a second, without a reload. herd runs as two parts on one database, as it is deployed: an
 * API (HTTP, dashboard, socket.io) and a worker (task worker, host monitor with libvirt's domain events). The
 * heartbeat is an hour, so only the event can bring the change; it travels event → worker → PostgreSQL → the
 * API's change watcher → socket.io → the page.
 */
const run = promisify(execFile);
const hv = sharedHypervisor();
const ADMIN_PASSWORD = `pw-${randomUUID()}`;

let dir: string;
let api: RunningHerd;
let worker: RunningHerd;
let browser: Browser;
let closeDb: () => Promise<void>;
let token: string;
let vm: { id: number; uuid: string };

async function call(method: 'GET' | 'POST', url: string, payload?: object) {
  const res = await api.http!.inject({ method, url, payload, headers: { authorization: `Bearer ${token}` } });
  return { status: res.statusCode, body: res.body ? res.json() : undefined };
}

const virsh = (...args: string[]) =>
  run('virsh', ['-q', '-c', hv.hosts[0].uri, ...args], { timeout: 60_000 });

beforeAll(async () => {
  compileDashboard();
  dir = await mkdtemp(path.join(os.tmpdir(), 'herd-hv-browser-'));
  const saveDir = path.join(hv.sharedDir, `save-${randomUUID().slice(0, 8)}`);
  await mkdir(saveDir, { recursive: true });
  const database = await createTestDatabase();
  closeDb = database.close;
  const env = {
    HERD_DATA_DIR: dir,
    DATABASE_URL: database.url,
    HERD_HTTP_PORT: '0',
    HERD_COLLECTD_PORT: '0',
    HERD_ADMIN_PASSWORD: ADMIN_PASSWORD,
    HERD_HEARTBEAT_SECONDS: '3600',
    HERD_SAVE_DIR: saveDir,
    HERD_LOG_LEVEL: process.env.HERD_TEST_LOG_LEVEL ?? 'silent',
  };
  const config = loadConfig(env);
  const log = createLogger(config.logLevel, 'test');
  api = await startHerd(config, log, { roles: ['api'] });
  const session = await api.http!.inject({
    method: 'POST',
    url: '/api/v1/session',
    payload: { username: 'admin', password: ADMIN_PASSWORD },
  });
  token = session.json().token;
  const pool = await call('POST', '/api/v1/pools', { name: 'rack', kind: 'hardware' });
  const team = await call('POST', '/api/v1/pools', { name: 'team', kind: 'vm', parentId: pool.body.id });
  const host = await call('POST', '/api/v1/hosts', { uri: hv.hosts[0].uri, poolId: pool.body.id });
  expect(host.status, JSON.stringify(host.body)).toBe(201);
  const created = await call('POST', '/api/v1/vms', {
    name: `browser-${randomUUID().slice(0, 6)}`,
    poolId: team.body.id,
    vcpus: 1,
    memoryMiB: 128,
    nics: [{ network: 'user' }],
    linuxBoot: { kernel: hv.image.kernel, initrd: hv.image.initrd, cmdline: guestCmdline() },
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  vm = (await call('GET', `/api/v1/vms/${created.body.id}`)).body;
  // The worker starts after the host exists: its first heartbeat starts the host's event stream.
  worker = await startHerd(config, log, { roles: ['worker'] });
  const start = await call('POST', `/api/v1/vms/${vm.id}/actions`, { action: 'start' });
  expect(start.status, JSON.stringify(start.body)).toBe(202);
  await waitFor(
    async () => (await call('GET', `/api/v1/vms/${vm.id}`)).body.state === 'running',
    60_000,
    100,
  );
  browser = await chromium.launch(CHROMIUM);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  if (vm) {
    await virsh('destroy', vm.uuid).catch(() => undefined);
    await virsh('undefine', vm.uuid).catch(() => undefined);
  }
  await worker?.stop();
  await api?.stop();
  await closeDb?.();
  await rm(dir, { recursive: true, force: true });
});

describe('the dashboard on a real hypervisor', () => {
  test('virsh suspend outside herd shows "paused" on the VM page within about a second', async () => {
    const page = await signIn(browser, api.httpUrl!, { username: 'admin', password: ADMIN_PASSWORD });
    await page.goto(`${api.httpUrl}/#/vm/${vm.id}`);
    const badge = page.locator('h1 .vm-state .badge');
    await expect.poll(() => badge.getAttribute('data-state'), { timeout: 10_000 }).toBe('running');

    // Twice, to be sure it is not a lucky coincidence with some poll.
    for (const [command, shown] of [
      ['suspend', 'paused'],
      ['resume', 'running'],
    ] as const) {
      await virsh(command, vm.uuid);
      const sent = Date.now();
      await page.waitForSelector(`h1 .vm-state .badge[data-state="${shown}"]`, { timeout: 10_000 });
      const took = Date.now() - sent;
      // About a second: the event is handled at once, the API's watcher reads changes every 0.5 s.
      expect(took, `${command} took ${took} ms to show`).toBeLessThan(1_500);
    }
    await page.close();
  });
});
