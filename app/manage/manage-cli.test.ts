import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { RunningWorker } from '../../api/tasks/worker.js';
import { createFleet, type Fleet, type User } from '../../api/vms/testing/vm-fleet.js';
import { createPool, createUserWithToken, grantRole } from '../../lib/testing/users.js';
import { credentialsFile } from './client.js';

/**
 * The built command line (`npm run build` first), as operators run it, against a real herd API on a port: a
 * real database, libvirt test-driver hosts and a task worker.
 */
const CLI = path.resolve('dist/app/cli.js');

let f: Fleet;
let worker: RunningWorker;
let url: string;
let config: string;
let alice: User;
let rack: number;
let team: number;
let h1: { id: number; uri: string };
let vmId: number;

beforeAll(async () => {
  f = await createFleet();
  const db = f.t.database.db;
  rack = await createPool(db, { name: 'rack-1' });
  team = await createPool(db, { name: 'team', kind: 'vm', parentId: rack });
  alice = await createUserWithToken(db, { username: 'alice', password: 'alice-password' });
  await grantRole(db, team, alice.id, 'user');
  h1 = await f.addHost(rack, { name: 'hv-a', cpus: 8, memoryMiB: 16384 });
  await f.addHost(rack, { name: 'hv-b', cpus: 4, memoryMiB: 8192 });
  const made = await f.request(alice, 'POST', '/api/v1/vms', {
    name: 'web',
    poolId: team,
    vcpus: 2,
    memoryMiB: 1024,
  });
  expect(made.status, JSON.stringify(made.body)).toBe(201);
  vmId = made.body.id;
  worker = await f.worker();
  url = await f.t.app.listen({ host: '127.0.0.1', port: 0 });
  config = await mkdtemp(path.join(os.tmpdir(), 'herd-cli-config-'));
});
afterAll(async () => {
  await worker?.stop();
  await f?.close();
  await rm(config, { recursive: true, force: true });
});

/** Runs `herd ...` (never blocking this process: the API answering it runs here). */
function herd(
  args: string[],
  options: { token?: string | null; env?: Record<string, string>; input?: string } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: config,
    XDG_CONFIG_HOME: config,
    HERD_URL: url,
    ...(options.token === null ? {} : { HERD_TOKEN: options.token ?? f.admin.token }),
    ...options.env,
  };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

/**
 * An aligned table: cells two spaces or more apart, and in each column every line (the heading's too) starts
 * at the same place (left-aligned columns) or ends at the same place (right-aligned ones).
 */
function parseTable(text: string): Array<Record<string, string>> {
  const lines = text.trimEnd().split('\n');
  const split = lines.map((line) => {
    const cells: Array<{ text: string; start: number; end: number }> = [];
    for (const m of line.matchAll(/\S+(?: \S+)*/g))
      cells.push({ text: m[0], start: m.index!, end: m.index! + m[0].length });
    return cells;
  });
  const headers = split[0].map((c) => c.text);
  headers.forEach((name, i) => {
    const column = split.map((cells) => cells[i]);
    expect(column.every(Boolean), `${name}: a cell missing`).toBe(true);
    const sameStart = new Set(column.map((c) => c.start)).size === 1;
    const sameEnd = new Set(column.map((c) => c.end)).size === 1;
    expect(sameStart || sameEnd, `column ${name} not aligned:\n${text}`).toBe(true);
  });
  return split.slice(1).map((cells) => {
    expect(cells.length).toBe(headers.length);
    return Object.fromEntries(headers.map((h, i) => [h, cells[i].text]));
  });
}

describe('herd pools|hosts|vms|quota over the API', () => {
  test('pools list: an aligned table by default, the API answer with --json', async () => {
    const r = await herd(['pools', 'list']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n')[0]).toMatch(/^ID +NAME +KIND +PARENT +ROLE$/);
    expect(parseTable(r.stdout)).toEqual([
      { ID: '1', NAME: 'default', KIND: 'hardware', PARENT: '-', ROLE: 'super' },
      { ID: String(rack), NAME: 'rack-1', KIND: 'hardware', PARENT: '1', ROLE: 'super' },
      { ID: String(team), NAME: 'team', KIND: 'vm', PARENT: String(rack), ROLE: 'super' },
    ]);
    const j = await herd(['pools', 'list', '--json']);
    expect(j.code).toBe(0);
    expect(JSON.parse(j.stdout)).toEqual((await f.request(f.admin, 'GET', '/api/v1/pools')).body);
    // Alice sees what the API shows her: her team, with her role.
    const mine = parseTable((await herd(['pools', 'list'], { token: alice.token })).stdout);
    expect(mine.map((p) => [p.NAME, p.ROLE])).toEqual([['team', 'user']]);
  });

  test('pools create and show', async () => {
    const r = await herd(['pools', 'create', 'team-b', '--kind', 'vm', '--parent', String(rack), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const created = JSON.parse(r.stdout);
    expect(created).toMatchObject({ name: 'team-b', kind: 'vm', parentId: rack });
    const row = await f.t.database.db
      .selectFrom('pools')
      .selectAll()
      .where('id', '=', created.id)
      .executeTakeFirstOrThrow();
    expect(row).toMatchObject({ name: 'team-b', kind: 'vm', parent_id: rack });
    const shown = parseTable((await herd(['pools', 'show', String(created.id)])).stdout);
    expect(Object.fromEntries(shown.map((l) => [l.FIELD, l.VALUE]))).toMatchObject({
      id: String(created.id),
      name: 'team-b',
      kind: 'vm',
      parentId: String(rack),
    });
  });

  test('hosts list, disable and enable change the host in the database', async () => {
    const list = parseTable((await herd(['hosts', 'list', '--pool', String(rack)])).stdout);
    expect(list.map((h) => [h.HOSTNAME, h.CPUS, h.MEMORY_MIB, h.ENABLED])).toEqual([
      ['hv-a', '8', '16384', 'yes'],
      ['hv-b', '4', '8192', 'yes'],
    ]);
    const off = await herd(['hosts', 'disable', String(h1.id)]);
    expect(off.code, off.stderr).toBe(0);
    expect(parseTable(off.stdout)[0]).toMatchObject({ ID: String(h1.id), ENABLED: 'no' });
    const enabled = async () =>
      (
        await f.t.database.db
          .selectFrom('hosts')
          .select('enabled')
          .where('id', '=', h1.id)
          .executeTakeFirstOrThrow()
      ).enabled;
    expect(await enabled()).toBe(false);
    expect((await herd(['hosts', 'enable', String(h1.id)])).code).toBe(0);
    expect(await enabled()).toBe(true);
  });

  test("hosts virt-type sets the host's virtualization type and says what guests get", async () => {
    const set = await herd(['hosts', 'virt-type', String(h1.id), 'qemu']);
    expect(set.code, set.stderr).toBe(0);
    // A test-driver host: its guests are the test driver's whatever the setting.
    const [header, line, reason] = set.stdout.split('\n');
    expect(parseTable(`${header}\n${line}\n`)[0]).toMatchObject({ ID: String(h1.id), VIRT: 'qemu:test' });
    expect(reason).toBe("libvirt's test driver: no guest really runs");
    const row = await f.t.database.db
      .selectFrom('hosts')
      .select('virt_type')
      .where('id', '=', h1.id)
      .executeTakeFirstOrThrow();
    expect(row.virt_type).toBe('qemu');
    const bad = await herd(['hosts', 'virt-type', String(h1.id), 'xen']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/xen.*auto, kvm, qemu|Allowed choices are auto, kvm, qemu/);
  });

  test('vms start queues a task; --wait waits for it; the VM then runs', async () => {
    const listed = parseTable((await herd(['vms', 'list'])).stdout);
    expect(listed).toEqual([
      expect.objectContaining({ ID: String(vmId), NAME: 'web', STATE: 'defined', VCPUS: '2' }),
    ]);
    // A user lets placement choose; only a pool admin may name the host.
    const refused = await herd(['vms', 'start', String(vmId), '--host', String(h1.id)], {
      token: alice.token,
    });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('herd: 403 forbidden: choosing hosts');
    const r = await herd(['vms', 'start', String(vmId), '--wait', '--json'], { token: alice.token });
    expect(r.code, r.stderr).toBe(0);
    const task = JSON.parse(r.stdout);
    expect(task).toMatchObject({ action: 'start', targetType: 'vm', targetId: vmId, state: 'done' });
    const row = await f.t.database.db
      .selectFrom('tasks')
      .selectAll()
      .where('id', '=', task.id)
      .executeTakeFirstOrThrow();
    expect(row).toMatchObject({ action: 'start', user_id: alice.id, state: 'done' });
    const vm = parseTable((await herd(['vms', 'list', '--state', 'running'])).stdout);
    expect(vm).toEqual([expect.objectContaining({ NAME: 'web', HOST: String(h1.id), STATE: 'running' })]);

    // Without --wait: the task as queued, in a table.
    const s = await herd(['vms', 'suspend', String(vmId)]);
    expect(s.code, s.stderr).toBe(0);
    const [queued] = parseTable(s.stdout);
    expect(queued).toMatchObject({ ACTION: 'suspend', TARGET: `vm ${vmId}` });
    expect(['queued', 'running', 'done']).toContain(queued.STATE);
    await f.waitTask(Number(queued.TASK));
  });

  test('an action the state refuses: exit 1 with the API message', async () => {
    const r = await herd(['vms', 'restore', String(vmId)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^herd: 409 invalid_state: .*state=/);
  });

  test('quota set merges the limits given; quota show prints used/limit per user and in total', async () => {
    const a = await herd(['quota', 'set', String(team), '--user', 'alice', '--vcpus', '6']);
    expect(a.code, a.stderr).toBe(0);
    const b = await herd([
      'quota',
      'set',
      String(team),
      '--user',
      String(alice.id),
      '--memory-mib',
      '4096',
      '--json',
    ]);
    expect(b.code, b.stderr).toBe(0);
    expect(JSON.parse(b.stdout)).toMatchObject({ userId: alice.id, vcpus: 6, memoryMiB: 4096, vms: null });
    expect((await herd(['quota', 'set', String(team), '--vms', '10'])).code).toBe(0);
    const show = await herd(['quota', 'show', String(team)]);
    expect(show.code, show.stderr).toBe(0);
    const lines = parseTable(show.stdout);
    // web is paused (suspended above): it still holds its 2 vCPUs and 1024 MiB.
    expect(lines).toEqual([
      {
        USER: '(pool total)',
        VCPUS: '2/-',
        MEMORY_MIB: '1024/-',
        STORAGE_GIB: '0/-',
        NICS: '1/-',
        VMS: '1/10',
        LIMIT_POOL: String(team),
      },
      {
        USER: 'alice',
        VCPUS: '2/6',
        MEMORY_MIB: '1024/4096',
        STORAGE_GIB: '0/-',
        NICS: '1/-',
        VMS: '1/-',
        LIMIT_POOL: String(team),
      },
    ]);
    const none = await herd(['quota', 'set', String(team)]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('give at least one limit');
  });

  test('pools limits and vms limits set the limits given and show own and effective ones', async () => {
    const pool = await herd(['pools', 'limits', String(team), '--disk-read-bytes-per-sec', '1000000']);
    expect(pool.code, pool.stderr).toBe(0);
    const poolRows = Object.fromEntries(parseTable(pool.stdout).map((r) => [r.LIMIT, r.VALUE]));
    expect(poolRows).toMatchObject({ 'disk-read-bytes-per-sec': '1000000', 'net-inbound-kibps': '-' });
    const vm = await herd([
      'vms',
      'limits',
      String(vmId),
      '--disk-read-bytes-per-sec',
      '4000000',
      '--net-outbound-kibps',
      '512',
      '--cpu-limit-percent',
      '50',
    ]);
    expect(vm.code, vm.stderr).toBe(0);
    const rows = Object.fromEntries(parseTable(vm.stdout).map((r) => [r.LIMIT, [r.OWN, r.EFFECTIVE]]));
    expect(rows).toMatchObject({
      'cpu-limit-percent': ['50', '50'],
      'net-outbound-kibps': ['512', '512'],
      'net-outbound-peak-kibps': ['-', '-'],
      'disk-read-bytes-per-sec': ['4000000', '1000000'],
    });
    const db = f.t.database.db;
    expect(
      await db
        .selectFrom('vms')
        .select(['net_outbound_kibps', 'disk_read_bytes_sec'])
        .where('id', '=', vmId)
        .executeTakeFirst(),
    ).toEqual({ net_outbound_kibps: 512, disk_read_bytes_sec: 4_000_000 });
    // Only shown without options; "none" lifts one; a bad value is refused before any request.
    const shown = await herd(['vms', 'limits', String(vmId), '--json']);
    expect(JSON.parse(shown.stdout)).toMatchObject({ effectiveDiskReadBytesPerSec: 1_000_000 });
    const lifted = await herd(['vms', 'limits', String(vmId), '--net-outbound-kibps', 'none', '--json']);
    expect(lifted.code, lifted.stderr).toBe(0);
    expect(JSON.parse(lifted.stdout)).toMatchObject({ netOutboundKiBps: null, cpuLimitPercent: 50 });
    const bad = await herd(['vms', 'limits', String(vmId), '--disk-write-iops', '-5']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/disk-write-iops.*whole number/);
    const refused = await herd(['vms', 'limits', String(vmId), '--disk-write-iops', '0']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^herd: 400 .*diskWriteIops/);
    await herd(['pools', 'limits', String(team), '--disk-read-bytes-per-sec', 'none']);
    await herd([
      'vms',
      'limits',
      String(vmId),
      '--cpu-limit-percent',
      'none',
      '--disk-read-bytes-per-sec',
      'none',
    ]);
  });

  test('bad token, no token, unknown id, bad URL: non-zero exit and a clear message', async () => {
    const bad = await herd(['vms', 'list'], { token: 'not-a-token' });
    expect(bad.code).toBe(1);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toContain('herd: 401 unauthorized: invalid, expired or revoked credentials');
    expect(bad.stderr).toContain('herd login');
    const none = await herd(['hosts', 'list'], { token: null });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('401');
    const missing = await herd(['vms', 'show', '999999']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('herd: 404 not_found: vm not found\n');
    const badUrl = await herd(['pools', 'list'], { env: { HERD_URL: 'ftp://x' } });
    expect(badUrl.code).toBe(1);
    expect(badUrl.stderr).toContain('must be http:// or https://');
    const badId = await herd(['vms', 'show', 'web']);
    expect(badId.code).not.toBe(0);
    expect(badId.stderr).toContain('must be an id');
  });

  test('herd login --save reads the password from stdin and keeps a token the next commands use', async () => {
    const wrong = await herd(['login', '--username', 'alice'], { token: null, input: 'nope\n' });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('401');
    const r = await herd(['login', '--username', 'alice', '--save'], {
      token: null,
      input: 'alice-password\n',
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`logged in as alice on ${url}`);
    const file = credentialsFile({ XDG_CONFIG_HOME: config });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const saved = JSON.parse(await readFile(file, 'utf8'));
    expect(saved.url).toBe(url);
    expect(r.stdout).not.toContain(saved.token);
    const list = await herd(['vms', 'list', '--json'], { token: null });
    expect(list.code, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout).items.map((v: { name: string }) => v.name)).toEqual(['web']);
    // The token is kept for its URL only.
    const elsewhere = await herd(['vms', 'list'], { token: null, env: { HERD_URL: 'http://127.0.0.1:9' } });
    expect(elsewhere.stderr).toContain('cannot reach herd at http://127.0.0.1:9');
  });
});
