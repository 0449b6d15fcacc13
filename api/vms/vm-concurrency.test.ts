import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createPool, createUserWithToken, grantRole } from '../../lib/testing/users.js';
import { createFleet, type Fleet, type User } from './testing/vm-fleet.js';

/**
 * The claim made with the state change: 100 concurrent start requests against a quota that fits 10 VMs
 * start exactly 10, whether they reach one API or two API processes on one database.
 */
let f: Fleet;
let rack: number;
const processes: ChildProcess[] = [];

beforeAll(async () => {
  f = await createFleet();
  rack = await createPool(f.t.database.db, { name: 'rack' });
  for (let i = 1; i <= 3; i++) await f.addHost(rack, { name: `big${i}`, cpus: 64, memoryMiB: 262144 });
});
afterAll(async () => {
  for (const p of processes) p.kill('SIGTERM');
  await f.close();
});

/** A VM pool where `user` may hold 10 running VMs, and 100 stopped VMs of theirs in it. */
async function hundredVms(name: string): Promise<{ user: User; pool: number; vms: number[] }> {
  const db = f.t.database.db;
  const user = await createUserWithToken(db, { username: name });
  const pool = await createPool(db, { name, kind: 'vm', parentId: rack });
  await grantRole(db, pool, user.id, 'user');
  const quota = await f.request(f.admin, 'PUT', `/api/v1/pools/${pool}/quotas/${user.id}`, { vms: 10 });
  expect(quota.status, JSON.stringify(quota.body)).toBeLessThan(300);
  const vms: number[] = [];
  for (let i = 0; i < 100; i++) {
    const res = await f.request(user, 'POST', '/api/v1/vms', {
      name: `${name}${i}`,
      poolId: pool,
      vcpus: 1,
      memoryMiB: 256,
    });
    expect(res.status).toBe(201);
    vms.push(res.body.id);
  }
  return { user, pool, vms };
}

async function expectTenStarted(pool: number, answers: Array<{ status: number; body: any }>) {
  const accepted = answers.filter((a) => a.status === 202);
  const refused = answers.filter((a) => a.status !== 202);
  expect(accepted).toHaveLength(10);
  for (const r of refused) expect(r.body).toMatchObject({ error: 'quota_exceeded', resource: 'vms' });
  const rows = await f.t.database.db.selectFrom('vms').select('state').where('pool_id', '=', pool).execute();
  expect(rows.filter((r) => r.state === 'starting')).toHaveLength(10);
  const tasks = await f.t.database.db.selectFrom('tasks').select('id').where('pool_id', '=', pool).execute();
  expect(tasks).toHaveLength(10);
}

/** `herd serve --only api` on the test database (from sources, through tsx), answering its address. */
async function apiProcess(): Promise<string> {
  const script = ['app/cli.ts', 'serve', '--only', 'api'];
  const child = spawn(process.execPath, ['--import', 'tsx', ...script], {
    env: {
      ...process.env,
      DATABASE_URL: f.t.database.url,
      HERD_HTTP_HOST: '127.0.0.1',
      HERD_HTTP_PORT: '0',
      HERD_LOG_LEVEL: 'info',
      HERD_DATA_DIR: f.dir,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  processes.push(child);
  const lines = createInterface({ input: child.stdout! });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('API process did not start within 30 s')), 30_000);
    child.once('exit', (code) => reject(new Error(`API process exited with ${code}`)));
    lines.on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; address?: string };
        if (entry.msg === 'HTTP API listening' && entry.address) {
          clearTimeout(timer);
          resolve(entry.address);
        }
      } catch {}
    });
  });
}

describe('100 concurrent starts, quota for 10', () => {
  test('one API', async () => {
    const { user, pool, vms } = await hundredVms('solo');
    const answers = await Promise.all(
      vms.map((id) => f.request(user, 'POST', `/api/v1/vms/${id}/actions`, { action: 'start' })),
    );
    await expectTenStarted(pool, answers);
  });

  test('two API processes on one database', async () => {
    const [a, b] = await Promise.all([apiProcess(), apiProcess()]);
    const { user, pool, vms } = await hundredVms('duo');
    const answers = await Promise.all(
      vms.map(async (id, i) => {
        const res = await fetch(`${i % 2 ? a : b}/api/v1/vms/${id}/actions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${user.token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ action: 'start' }),
        });
        return { status: res.status, body: await res.json() };
      }),
    );
    await expectTenStarted(pool, answers);
  });
});
