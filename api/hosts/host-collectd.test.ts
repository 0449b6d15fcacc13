import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type IngestService, startIngest } from '../../ingest/ingest-service.js';
import { LiveView } from '../../ingest/live-view.js';
import type { MetricsStore } from '../../ingest/store/metrics-store.js';
import { createMetricsStore } from '../../ingest/store/stores.js';
import { loadConfig } from '../../lib/config.js';
import { createLogger } from '../../lib/log.js';
import { createRegistry } from '../../lib/metrics.js';
import { createTestApp, type TestApp } from '../../lib/testing/app.js';
import { testUuid, writeTestHost } from '../../lib/testing/libvirt-hosts.js';
import { authHeader, createPool, createUserWithToken } from '../../lib/testing/users.js';
import { waitFor } from '../../lib/testing/wait.js';
import { HostConnections } from './driver/index.js';
import { HostMonitor } from './host-monitor.js';

/**
 * collectd-plugins/ as shipped: the real collectd daemon runs the herd fragment (virt plugin on a libvirt
 * test-driver host, signed network traffic) into herd's real ingest; the registration script posts the host
 * to herd's real HTTP API.
 */
const PLUGINS = path.resolve(import.meta.dirname, '../../collectd-plugins');
const log = createLogger('silent');
const run = promisify(execFile);

let t: TestApp;
let dir: string;
let ingest: IngestService;
let store: MetricsStore;
let collectd: ChildProcess | undefined;
const liveView = new LiveView();
const connections = new HostConnections(log);
let admin: { id: number; token: string };
let uri: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'herd-collectd-plugins-'));
  t = await createTestApp({ deps: { liveView, hostConnections: connections } });
  admin = await createUserWithToken(t.database.db, { username: 'root', superAdmin: true });
  const authFile = path.join(dir, 'collectd-auth');
  await writeFile(authFile, 'hv-agent: s3cret\n');
  const config = loadConfig({
    HERD_DATA_DIR: dir,
    HERD_COLLECTD_HOST: '127.0.0.1',
    HERD_COLLECTD_PORT: '0',
    HERD_COLLECTD_SECURITY_LEVEL: 'sign',
    HERD_COLLECTD_AUTH_FILE: authFile,
  });
  const registry = createRegistry();
  store = createMetricsStore(config, t.database.db, log, { registry });
  await store.start();
  ingest = await startIngest({ config, db: t.database.db, log, registry, store, liveView });
  uri = await writeTestHost(dir, {
    name: 'hv1',
    cpus: 8,
    memoryMiB: 16384,
    domains: [{ name: 'guest-a' }, { name: 'guest-b', memoryMiB: 1024 }],
  });
});
afterAll(async () => {
  collectd?.kill('SIGKILL');
  await ingest?.stop();
  await store?.stop();
  await t.close();
  await connections.closeAll();
  await rm(dir, { recursive: true, force: true });
});

describe('collectd.conf fragment', () => {
  test('the real collectd feeds herd: host live view, guests by UUID, host state from both signals', async () => {
    const fragment = (await readFile(path.join(PLUGINS, 'collectd.conf'), 'utf8'))
      .replace('"HERD_SERVER" "25826"', `"127.0.0.1" "${ingest.port}"`)
      .replace('"HERD_USERNAME"', '"hv-agent"')
      .replace('"HERD_PASSWORD"', '"s3cret"')
      .replace('"qemu:///system"', `"${uri}"`);
    expect(fragment).not.toMatch(/"HERD_[A-Z]+"|qemu:/);
    await writeFile(path.join(dir, 'herd.conf'), fragment);
    const conf = path.join(dir, 'collectd.conf');
    await writeFile(
      conf,
      [
        'Hostname "hv1"',
        'FQDNLookup false',
        `BaseDir "${dir}"`,
        `PIDFile "${dir}/collectd.pid"`,
        'PluginDir "/usr/lib/collectd"',
        'TypesDB "/usr/share/collectd/types.db"',
        'Interval 1',
        `Include "${dir}/herd.conf"`,
        '',
      ].join('\n'),
    );
    collectd = spawn('/usr/sbin/collectd', ['-f', '-C', conf], { stdio: 'ignore' });

    const db = t.database.db;
    const rack = await createPool(db, { name: 'rack' });
    const vmPool = await createPool(db, { name: 'vms', kind: 'vm', parentId: rack });
    const added = await t.app.inject({
      method: 'POST',
      url: '/api/v1/hosts',
      headers: authHeader(admin.token),
      payload: { uri, poolId: rack },
    });
    expect(added.json().hostname).toBe('hv1');
    const hostId = added.json().id;
    const guestA = testUuid('hv1/guest-a');
    await db
      .insertInto('vms')
      .values({
        uuid: guestA,
        name: 'guest-a',
        pool_id: vmPool,
        owner_id: admin.id,
        vcpus: 1,
        memory_mib: 512,
        host_id: hostId,
        state: 'running',
      })
      .execute();

    await waitFor(() => {
      const host = liveView.hostSummary('hv1');
      const guest = liveView.guestSummary(guestA);
      return (
        host?.load1 !== undefined &&
        host.memoryFreeMiB !== undefined &&
        guest?.memoryMiB !== undefined &&
        liveView.guestSummary(testUuid('hv1/guest-b'))?.memoryMiB !== undefined
      );
    }, 20_000);
    // The virt plugin names guests by UUID: herd's VM rows are found by it.
    const vm = await db
      .selectFrom('vms')
      .select('name')
      .where('uuid', '=', liveView.hostNames().find((h) => h === guestA)!)
      .executeTakeFirstOrThrow();
    expect(vm.name).toBe('guest-a');
    expect(liveView.guestSummary(guestA)?.memoryMiB).toBe(512);
    expect(liveView.guestSummary(testUuid('hv1/guest-b'))?.memoryMiB).toBe(1024);

    const monitor = new HostMonitor({ db, connections, log, liveView, intervalSeconds: 60 });
    await monitor.tick();
    const view = (
      await t.app.inject({ method: 'GET', url: `/api/v1/hosts/${hostId}`, headers: authHeader(admin.token) })
    ).json();
    expect(view).toMatchObject({ state: 'up', collectd: { silent: false, interval: 1 } });
    expect(view.live.load1).toBeGreaterThanOrEqual(0);
    expect(Date.parse(view.lastSeen)).toBeGreaterThan(Date.now() - 5000);
    const stored = await db
      .selectFrom('hosts')
      .select('last_seen_at')
      .where('id', '=', hostId)
      .executeTakeFirstOrThrow();
    expect(stored.last_seen_at).not.toBeNull();

    // collectd stops: 3 intervals later the host is flagged silent, still up while libvirt answers.
    collectd.kill('SIGTERM');
    await waitFor(
      async () => {
        await monitor.tick();
        const h = (
          await t.app.inject({
            method: 'GET',
            url: `/api/v1/hosts/${hostId}`,
            headers: authHeader(admin.token),
          })
        ).json();
        return h.collectd.silent === true && h.state === 'up';
      },
      10_000,
      250,
    );
  });
});

describe('herd-register', () => {
  test('posts the inventory read with virsh; the host lands disabled in the default pool', async () => {
    const address = await t.app.listen({ host: '127.0.0.1', port: 0 });
    const tokenFile = path.join(dir, 'token');
    await writeFile(tokenFile, admin.token);
    const env = {
      PATH: process.env.PATH,
      HERD_URL: address,
      HERD_TOKEN_FILE: tokenFile,
      VIRSH_URI: uri,
      HERD_HOSTNAME: 'hv1.example',
      HERD_HOST_URI: 'qemu+ssh://root@hv1.example/system',
    };
    const { stdout } = await run(path.join(PLUGINS, 'herd-register'), [], { env });
    const answer = JSON.parse(stdout);
    expect(answer).toMatchObject({ created: true, enabled: false, poolId: 1 });
    const host = (
      await t.app.inject({
        method: 'GET',
        url: `/api/v1/hosts/${answer.id}`,
        headers: authHeader(admin.token),
      })
    ).json();
    expect(host).toMatchObject({
      uri: 'qemu+ssh://root@hv1.example/system',
      hostname: 'hv1.example',
      cpus: 8,
      cores: 8,
      mhz: 2400,
      memoryMiB: 16384,
      arch: 'x86_64',
      enabled: false,
      poolId: 1,
    });
    // Again: the same host, refreshed.
    const again = JSON.parse((await run(path.join(PLUGINS, 'herd-register'), [], { env })).stdout);
    expect(again).toMatchObject({ id: answer.id, created: false });

    // A wrong token is refused with herd's message, and the script says so.
    await writeFile(tokenFile, 'nope');
    const failed = await run(path.join(PLUGINS, 'herd-register'), [], { env }).catch((err) => err);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/registration refused \(HTTP 401\)/);
  });
});
