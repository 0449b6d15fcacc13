import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { loadConfig } from './config.js';
import { collectdInstalled, startTraffic, type Traffic } from './demo-traffic.js';
import {
  guestFigures,
  guestValueLists,
  hostFigures,
  hostValueLists,
  type SimulatedGuest,
  type SimulatedHost,
  toPoints,
} from './fleet-signal.js';
import { createLogger, type Logger } from './log.js';
import { ROLES, type RunningHerd, startHerd } from './server.js';
import { writeTestHost } from './testing/libvirt-hosts.js';

export interface DemoOptions {
  /** The environment herd's configuration is read from (process.env by default). */
  env?: NodeJS.ProcessEnv;
  /** `auto`: real collectd daemons where collectd is installed, herd's encoder otherwise. */
  collectd?: 'auto' | 'real' | 'simulated';
  /** Seconds between the simulated hosts' reports (collectd's Interval). */
  intervalSeconds?: number;
  /** How much history the first start writes, so graphs have something to show at once. */
  historySeconds?: number;
}

export interface DemoLogin {
  username: string;
  password: string;
  sees: string;
}

export interface RunningDemo {
  herd: RunningHerd;
  url: string;
  logins: DemoLogin[];
  traffic: Traffic;
  log: Logger;
  stop(): Promise<void>;
}

const HOSTS: Array<SimulatedHost & { rack: 'Rack A' | 'Rack B' }> = [
  { name: 'rack-a-01', cpus: 16, memoryMiB: 65_536, rack: 'Rack A' },
  { name: 'rack-a-02', cpus: 16, memoryMiB: 65_536, rack: 'Rack A' },
  { name: 'rack-a-03', cpus: 16, memoryMiB: 65_536, rack: 'Rack A' },
  { name: 'rack-b-01', cpus: 32, memoryMiB: 131_072, rack: 'Rack B' },
  { name: 'rack-b-02', cpus: 32, memoryMiB: 131_072, rack: 'Rack B' },
];
const USERS: Array<{ username: string; sees: string }> = [
  { username: 'alice', sees: 'user in Team Alpha: her own VMs' },
  { username: 'bob', sees: 'user in Team Beta: his own VMs' },
  { username: 'carol', sees: 'monitor of the whole datacenter' },
];
const VMS: Array<{
  owner: string;
  team: 'Team Alpha' | 'Team Beta';
  name: string;
  vcpus: number;
  memoryMiB: number;
  start: boolean;
}> = [
  { owner: 'alice', team: 'Team Alpha', name: 'web-1', vcpus: 2, memoryMiB: 2048, start: true },
  { owner: 'alice', team: 'Team Alpha', name: 'web-2', vcpus: 2, memoryMiB: 2048, start: true },
  { owner: 'alice', team: 'Team Alpha', name: 'db-1', vcpus: 4, memoryMiB: 8192, start: false },
  { owner: 'bob', team: 'Team Beta', name: 'build-1', vcpus: 8, memoryMiB: 16_384, start: true },
  { owner: 'bob', team: 'Team Beta', name: 'cache-1', vcpus: 1, memoryMiB: 1024, start: false },
];

/**
 * `herd demo`: herd with embedded defaults (its own data directory, PostgreSQL unless DATABASE_URL is set),
 * five simulated hosts (libvirt test-driver hosts) in two racks of a datacenter, two teams with VMs, three
 * users, and collectd traffic for the hosts and running VMs. Everything is made through the API, as a person
 * would. Started again on the same data directory, it reuses what it made.
 */
export async function startDemo(options: DemoOptions = {}): Promise<RunningDemo> {
  const env = { ...(options.env ?? process.env) };
  env.HERD_DATA_DIR ||= path.resolve('data', 'demo');
  env.HERD_COLLECTD_HOST ||= '127.0.0.1';
  env.HERD_LOG_LEVEL ||= 'warn';
  const dataDir = path.resolve(env.HERD_DATA_DIR);
  // The demo's hosts are libvirt's test driver, served by a libvirtd herd starts for them (test-daemon.ts in
  // api/hosts/driver): saved VMs go under the data directory, which that daemon writes as herd's own user.
  env.HERD_SAVE_DIR ||= path.join(dataDir, 'save');
  await mkdir(dataDir, { recursive: true });
  await mkdir(env.HERD_SAVE_DIR, { recursive: true });
  const passwords = await demoPasswords(path.join(dataDir, 'demo-logins.json'), env.HERD_ADMIN_PASSWORD);
  env.HERD_ADMIN_PASSWORD = passwords.admin;

  const config = loadConfig(env);
  const log = createLogger(config.logLevel, 'demo');
  const herd = await startHerd(config, log, { roles: [...ROLES] });
  try {
    const http = herd.http!;
    const admin = await login(http, 'admin', passwords.admin);
    const fresh = await seed(http, admin, passwords, path.join(dataDir, 'demo-hosts'));
    await seedVms(http, admin, passwords, log);
    const running = async (): Promise<SimulatedGuest[]> => {
      const vms = await call<{ items: Array<{ uuid: string; vcpus: number; memoryMiB: number }> }>(
        http,
        admin,
        'GET',
        '/api/v1/vms?state=running&limit=1000',
      ).catch(() => ({ items: [] }));
      return vms.items.map((v) => ({ uuid: v.uuid, vcpus: v.vcpus, memoryMiB: v.memoryMiB }));
    };
    const wanted = options.collectd ?? 'auto';
    const collectd = wanted === 'auto' ? (collectdInstalled() ? 'real' : 'simulated') : wanted;
    if (fresh)
      await writeHistory(
        herd,
        collectd,
        options.historySeconds ?? 3600,
        options.intervalSeconds ?? 10,
        await running(),
      );
    const traffic = await startTraffic({
      hosts: HOSTS,
      guests: running,
      port: herd.ingest!.port,
      host: config.collectd.host === '0.0.0.0' ? '127.0.0.1' : config.collectd.host,
      intervalSeconds: options.intervalSeconds,
      collectd,
      dir: path.join(dataDir, 'collectd'),
      log,
    });
    const logins: DemoLogin[] = [
      { username: 'admin', password: passwords.admin, sees: 'super-admin: everything' },
      ...USERS.map((u) => ({ username: u.username, password: passwords[u.username], sees: u.sees })),
    ];
    return {
      herd,
      url: herd.httpUrl!,
      logins,
      traffic,
      log,
      async stop() {
        await traffic.stop();
        await herd.stop();
      },
    };
  } catch (err) {
    await herd.stop();
    throw err;
  }
}

/** What `herd demo` prints once it runs. */
export function demoBanner(demo: RunningDemo): string {
  const width = Math.max(...demo.logins.map((l) => l.username.length + l.password.length)) + 3;
  const traffic =
    demo.traffic.kind === 'real'
      ? `a collectd daemon per simulated host, carrying that host's simulated figures`
      : `herd's own collectd encoder (simulated figures)`;
  return [
    '',
    `herd demo is running: open ${demo.url}/`,
    '',
    ...demo.logins.map((l) => `  log in as ${`${l.username} / ${l.password}`.padEnd(width)}  ${l.sees}`),
    '',
    `${HOSTS.length} simulated hosts (libvirt test driver) send collectd traffic through ${traffic}.`,
    'Ctrl-C stops it; the demo keeps its data in HERD_DATA_DIR (default ./data/demo).',
    '',
  ].join('\n');
}

async function demoPasswords(file: string, admin: string | undefined): Promise<Record<string, string>> {
  const known: Record<string, string> = existsSync(file) ? JSON.parse(await readFile(file, 'utf8')) : {};
  const out: Record<string, string> = { ...known };
  for (const name of ['admin', ...USERS.map((u) => u.username)])
    out[name] ??= randomBytes(6).toString('base64url');
  if (admin) out.admin = admin;
  await writeFile(file, `${JSON.stringify(out, null, 2)}\n`, { mode: 0o600 });
  return out;
}

async function call<T>(
  http: FastifyInstance,
  token: string,
  method: string,
  url: string,
  payload?: unknown,
): Promise<T> {
  const res = await http.inject({
    method: method as 'GET',
    url,
    payload: payload as object,
    headers: { authorization: `Bearer ${token}` },
  });
  if (res.statusCode >= 400)
    throw new Error(`demo: ${method} ${url} answered ${res.statusCode}: ${res.body}`);
  return (res.body ? res.json() : undefined) as T;
}

async function login(http: FastifyInstance, username: string, password: string): Promise<string> {
  const res = await http.inject({ method: 'POST', url: '/api/v1/session', payload: { username, password } });
  if (res.statusCode !== 200) {
    throw new Error(
      `demo: cannot log in as ${username} (${res.statusCode}); a data directory from another run? Set HERD_ADMIN_PASSWORD.`,
    );
  }
  return res.json().token;
}

/** Pools, hosts, users, roles and quotas, unless a previous run made them; answers whether it did now. */
async function seed(
  http: FastifyInstance,
  admin: string,
  passwords: Record<string, string>,
  hostDir: string,
) {
  const api = <T>(method: string, url: string, payload?: unknown) =>
    call<T>(http, admin, method, url, payload);
  const pools = await api<{ items: Array<{ id: number; name: string }> }>('GET', '/api/v1/pools?limit=1000');
  if (pools.items.some((p) => p.name === 'Datacenter')) return false;

  const pool = async (name: string, kind: 'hardware' | 'vm', parentId?: number) =>
    (await api<{ id: number }>('POST', '/api/v1/pools', { name, kind, ...(parentId ? { parentId } : {}) }))
      .id;
  const dc = await pool('Datacenter', 'hardware');
  const racks = {
    'Rack A': await pool('Rack A', 'hardware', dc),
    'Rack B': await pool('Rack B', 'hardware', dc),
  };
  const teams = {
    'Team Alpha': await pool('Team Alpha', 'vm', racks['Rack A']),
    'Team Beta': await pool('Team Beta', 'vm', racks['Rack B']),
  };

  for (const host of HOSTS) {
    const uri = await writeTestHost(hostDir, { name: host.name, cpus: host.cpus, memoryMiB: host.memoryMiB });
    await api('POST', '/api/v1/hosts', { uri, poolId: racks[host.rack] });
  }

  const userIds: Record<string, number> = {};
  for (const u of USERS) {
    userIds[u.username] = (
      await api<{ id: number }>('POST', '/api/v1/users', {
        username: u.username,
        password: passwords[u.username],
      })
    ).id;
  }
  await api('PUT', `/api/v1/pools/${teams['Team Alpha']}/permissions/${userIds.alice}`, { role: 'user' });
  await api('PUT', `/api/v1/pools/${teams['Team Beta']}/permissions/${userIds.bob}`, { role: 'user' });
  await api('PUT', `/api/v1/pools/${dc}/permissions/${userIds.carol}`, { role: 'monitor' });
  await api('PUT', `/api/v1/pools/${teams['Team Alpha']}/quotas/${userIds.alice}`, {
    vcpus: 16,
    memoryMiB: 32_768,
    vms: 6,
  });
  await api('PUT', `/api/v1/pools/${teams['Team Beta']}/quotas/${userIds.bob}`, {
    vcpus: 24,
    memoryMiB: 65_536,
    vms: 6,
  });

  return true;
}

/** The demo VMs, owned by their users, most of them started; none when the VM API does not answer. */
async function seedVms(http: FastifyInstance, admin: string, passwords: Record<string, string>, log: Logger) {
  const existing = await call<{ items: unknown[] }>(http, admin, 'GET', '/api/v1/vms?limit=1').catch(
    (err) => {
      log.warn({ err: (err as Error).message }, 'demo: no VMs (the VM API did not answer)');
      return undefined;
    },
  );
  if (!existing || existing.items.length > 0) return;
  const pools = await call<{ items: Array<{ id: number; name: string }> }>(
    http,
    admin,
    'GET',
    '/api/v1/pools?limit=1000',
  );
  const poolId = (name: string) => pools.items.find((p) => p.name === name)?.id;
  const tokens: Record<string, string> = {};
  for (const vm of VMS) {
    tokens[vm.owner] ??= await login(http, vm.owner, passwords[vm.owner]);
    const as = <T>(method: string, url: string, payload?: unknown) =>
      call<T>(http, tokens[vm.owner], method, url, payload);
    const spec = { name: vm.name, poolId: poolId(vm.team), vcpus: vm.vcpus, memoryMiB: vm.memoryMiB };
    const { id } = await as<{ id: number }>('POST', '/api/v1/vms', spec);
    if (vm.start) {
      await as('POST', `/api/v1/vms/${id}/actions`, { action: 'start' }).catch((err) =>
        log.warn({ err: (err as Error).message }, 'demo: a VM did not start'),
      );
    }
  }
}

/** The last `seconds` of figures for the hosts and running guests, written straight to the store. */
async function writeHistory(
  herd: RunningHerd,
  collectd: 'real' | 'simulated',
  seconds: number,
  interval: number,
  guests: SimulatedGuest[],
): Promise<void> {
  const now = Date.now() / 1000;
  for (const host of HOSTS) {
    const points = [];
    for (let t = now - seconds; t < now - interval; t += interval) {
      points.push(hostFigures(host, t));
      // Real collectd counters continue from their own values: synthetic ones before them would read as a jump.
      if (collectd === 'simulated') points.push(...toPoints(hostValueLists(host, t, interval)));
    }
    herd.store.write(points);
    await herd.store.flush();
  }
  for (const guest of guests) {
    const points = [];
    for (let t = now - seconds; t < now - interval; t += interval) {
      points.push(guestFigures(guest, t), ...toPoints(guestValueLists(guest, t, interval)));
    }
    herd.store.write(points);
    await herd.store.flush();
  }
}
