import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LiveView } from '../../ingest/live-view.js';
import type { DsType } from '../../ingest/types.js';
import { createTestApp, type TestApp } from '../../lib/testing/app.js';
import { insertHost, insertVm } from '../../lib/testing/fleet.js';
import { type PromExposition, parsePrometheusText } from '../../lib/testing/prometheus-text.js';
import { authHeader, createPool, createUserWithToken, grantRole } from '../../lib/testing/users.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

let t: TestApp;
const live = new LiveView();
let root: { id: number; token: string };
let alice: { id: number; token: string };
let bob: { id: number; token: string };
let carol: { id: number; token: string };
let rack: number;
let team: number;
let hv1: number;
let hv2: number;
let web: number;
let db1: number;
let bobVm: number;

/** A pool name needing every escape of the text format: a quote, a backslash, a newline. */
const RACK = 'rack "A" \\ east\nrow 2';

function feed(
  host: string,
  plugin: string,
  type: string,
  typeInstance: string,
  names: string[],
  values: number[],
) {
  const dsTypes: DsType[] = values.map(() => 'gauge');
  live.update(
    {
      host,
      plugin,
      pluginInstance: '',
      type,
      typeInstance,
      time: Date.now() / 1000,
      interval: 10,
      dsTypes,
      values,
    },
    names,
  );
}

beforeAll(async () => {
  t = await createTestApp({ deps: { liveView: live } });
  const db = t.database.db;
  root = await createUserWithToken(db, { username: 'root', superAdmin: true });
  alice = await createUserWithToken(db, { username: 'alice' });
  bob = await createUserWithToken(db, { username: 'bob' });
  carol = await createUserWithToken(db, { username: 'carol' });
  rack = await createPool(db, { name: RACK });
  team = await createPool(db, { name: 'team', kind: 'vm', parentId: rack });
  await grantRole(db, team, alice.id, 'user');
  await grantRole(db, team, bob.id, 'user');
  await grantRole(db, team, carol.id, 'monitor');
  hv1 = await insertHost(db, { poolId: rack, cpus: 16, memoryMiB: 65536, hostname: 'hv1' });
  hv2 = await insertHost(db, { poolId: rack, cpus: 8, memoryMiB: 32768, hostname: 'hv2' });
  await db.updateTable('hosts').set({ state: 'up' }).where('id', '=', hv1).execute();
  await db.updateTable('hosts').set({ state: 'down', enabled: false }).where('id', '=', hv2).execute();
  web = await insertVm(db, {
    poolId: team,
    ownerId: alice.id,
    state: 'running',
    hostId: hv1,
    vcpus: 4,
    memoryMiB: 8192,
    nics: 2,
    volumesGiB: [20],
    name: 'web',
  });
  db1 = await insertVm(db, {
    poolId: team,
    ownerId: alice.id,
    state: 'shutoff',
    vcpus: 2,
    memoryMiB: 4096,
    name: 'db1',
  });
  bobVm = await insertVm(db, {
    poolId: team,
    ownerId: bob.id,
    state: 'paused',
    hostId: hv1,
    vcpus: 1,
    memoryMiB: 1024,
    name: 'bob-vm',
  });
  const put = (url: string, payload: object) =>
    t.app.inject({ method: 'PUT', url, headers: authHeader(root.token), payload });
  expect(
    (await put(`/api/v1/pools/${team}/quotas/${alice.id}`, { vcpus: 8, memoryMiB: 16384 })).statusCode,
  ).toBe(200);
  expect((await put(`/api/v1/pools/${team}/quotas/${bob.id}`, { vms: 1 })).statusCode).toBe(200);
  expect((await put(`/api/v1/pools/${team}/quota`, { storageGiB: 100 })).statusCode).toBe(200);

  feed('hv1', 'load', 'load', '', ['shortterm', 'midterm', 'longterm'], [0.5, 0.75, 1.25]);
  feed('hv1', 'memory', 'memory', 'used', ['value'], [3 * GiB]);
  feed('hv1', 'memory', 'memory', 'free', ['value'], [60 * GiB]);
});
afterAll(() => t.close());

async function scrape(
  token?: string,
): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  const res = await t.app.inject({
    method: 'GET',
    url: '/metrics/fleet',
    headers: token === undefined ? {} : authHeader(token),
  });
  return { status: res.statusCode, body: res.body, headers: res.headers };
}

async function scraped(token: string): Promise<PromExposition> {
  const res = await scrape(token);
  expect(res.status, res.body).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheusText(res.body);
}

describe('GET /metrics/fleet', () => {
  test('hosts: inventory, allocations from active VMs, state and live collectd figures; names escaped', async () => {
    const m = await scraped(root.token);
    const h1 = { host: 'hv1', host_id: String(hv1), pool: RACK, pool_id: String(rack) };
    const h2 = { host: 'hv2', host_id: String(hv2) };
    expect(m.types.get('herd_host_up')).toBe('gauge');
    expect(m.value('herd_host_up', h1)).toBe(1);
    expect(m.value('herd_host_up', h2)).toBe(0);
    expect(m.value('herd_host_enabled', h1)).toBe(1);
    expect(m.value('herd_host_enabled', h2)).toBe(0);
    expect(m.value('herd_host_cpus', h1)).toBe(16);
    expect(m.value('herd_host_memory_bytes', h2)).toBe(32768 * MiB);
    // web (running, 4/8192) and bob-vm (paused, 1/1024) hold room on hv1; db1 (shutoff) holds none.
    expect(m.value('herd_host_allocated_vcpus', h1)).toBe(5);
    expect(m.value('herd_host_allocated_memory_bytes', h1)).toBe(9216 * MiB);
    expect(m.value('herd_host_allocated_vcpus', h2)).toBe(0);
    expect(m.value('herd_host_load1', h1)).toBe(0.5);
    expect(m.value('herd_host_load5', h1)).toBe(0.75);
    expect(m.value('herd_host_load15', h1)).toBe(1.25);
    expect(m.value('herd_host_memory_used_bytes', h1)).toBe(3 * GiB);
    expect(m.value('herd_host_memory_free_bytes', h1)).toBe(60 * GiB);
    expect(Math.abs(m.value('herd_host_collectd_last_seen_seconds', h1) - Date.now() / 1000)).toBeLessThan(
      60,
    );
    // hv2 sends nothing: no live series rather than zeros.
    expect(m.find('herd_host_load1', h2)).toEqual([]);
    // The pool's name went through the text format's escapes and came back whole.
    expect(m.find('herd_host_up').map((s) => s.labels.pool)).toEqual([RACK, RACK]);
  });

  test('VMs: one state series each, running, size; pools sum their subtree', async () => {
    const m = await scraped(root.token);
    const vm = (id: number, name: string, host: string, owner: string) => ({
      vm: name,
      vm_id: String(id),
      pool: 'team',
      pool_id: String(team),
      host,
      owner,
    });
    expect(m.find('herd_vm_state').map((s) => [s.labels.vm, s.labels.state, s.value])).toEqual([
      ['web', 'running', 1],
      ['db1', 'shutoff', 1],
      ['bob-vm', 'paused', 1],
    ]);
    expect(m.value('herd_vm_state', { ...vm(web, 'web', 'hv1', 'alice'), state: 'running' })).toBe(1);
    expect(m.value('herd_vm_running', vm(web, 'web', 'hv1', 'alice'))).toBe(1);
    expect(m.value('herd_vm_running', vm(db1, 'db1', '', 'alice'))).toBe(0);
    expect(m.value('herd_vm_running', vm(bobVm, 'bob-vm', 'hv1', 'bob'))).toBe(0);
    expect(m.value('herd_vm_vcpus', { vm: 'db1' })).toBe(2);
    expect(m.value('herd_vm_memory_bytes', { vm: 'web' })).toBe(8192 * MiB);

    const rackTotals = { pool: RACK, pool_id: String(rack), kind: 'hardware' };
    expect(m.value('herd_pool_hosts', rackTotals)).toBe(2);
    expect(m.value('herd_pool_hosts_up', rackTotals)).toBe(1);
    expect(m.value('herd_pool_cpus', rackTotals)).toBe(24);
    expect(m.value('herd_pool_memory_bytes', rackTotals)).toBe(98304 * MiB);
    expect(m.value('herd_pool_allocated_vcpus', rackTotals)).toBe(5);
    // The rack's VM pool is below it: its VMs count in the rack's totals too.
    expect(m.value('herd_pool_vms', rackTotals)).toBe(3);
    expect(m.value('herd_pool_active_vms', rackTotals)).toBe(2);
    expect(m.value('herd_pool_active_vcpus', { pool: 'team' })).toBe(5);
    expect(m.value('herd_pool_active_memory_bytes', { pool: 'team' })).toBe(9216 * MiB);
    expect(m.value('herd_pool_hosts', { pool: 'team' })).toBe(0);
    // The default pool (id 1) holds the rack: the whole fleet is below it.
    expect(m.value('herd_pool_cpus', { pool_id: '1' })).toBe(24);
    expect(m.value('herd_pool_vms', { pool_id: '1' })).toBe(3);
  });

  test('quota rows: used and limit per resource in base units; unlimited has no limit series', async () => {
    const m = await scraped(root.token);
    const q = (scope: string, user: string, resource: string) => ({
      pool: 'team',
      pool_id: String(team),
      scope,
      user,
      resource,
    });
    expect(m.value('herd_quota_used', q('user', 'alice', 'vcpus'))).toBe(4);
    expect(m.value('herd_quota_limit', q('user', 'alice', 'vcpus'))).toBe(8);
    expect(m.value('herd_quota_used', q('user', 'alice', 'memory_bytes'))).toBe(8192 * MiB);
    expect(m.value('herd_quota_limit', q('user', 'alice', 'memory_bytes'))).toBe(16384 * MiB);
    expect(m.value('herd_quota_used', q('user', 'alice', 'nics'))).toBe(2);
    expect(m.value('herd_quota_used', q('user', 'alice', 'storage_bytes'))).toBe(20 * GiB);
    expect(m.find('herd_quota_limit', q('user', 'alice', 'nics'))).toEqual([]);
    expect(m.value('herd_quota_used', q('user', 'bob', 'vms'))).toBe(1);
    expect(m.value('herd_quota_limit', q('user', 'bob', 'vms'))).toBe(1);
    expect(m.value('herd_quota_used', q('pool', '', 'vcpus'))).toBe(5);
    expect(m.value('herd_quota_used', q('pool', '', 'storage_bytes'))).toBe(20 * GiB);
    expect(m.value('herd_quota_limit', q('pool', '', 'storage_bytes'))).toBe(100 * GiB);
    expect(m.find('herd_quota_used')).toHaveLength(15);
  });

  test('what the token may view: a user its own VMs and quota row, a monitor the pool, no hosts', async () => {
    const a = await scraped(alice.token);
    expect(a.find('herd_vm_state').map((s) => s.labels.vm)).toEqual(['web', 'db1']);
    expect(a.find('herd_host_up')).toEqual([]);
    expect(a.find('herd_pool_vms').map((s) => [s.labels.pool, s.value])).toEqual([['team', 2]]);
    expect([...new Set(a.find('herd_quota_used').map((s) => `${s.labels.scope}:${s.labels.user}`))]).toEqual([
      'user:alice',
      'pool:',
    ]);
    const c = await scraped(carol.token);
    expect(c.find('herd_vm_state').map((s) => s.labels.vm)).toEqual(['web', 'db1', 'bob-vm']);
    expect(new Set(c.find('herd_quota_used').map((s) => s.labels.user))).toEqual(
      new Set(['alice', 'bob', '']),
    );
    expect(c.find('herd_host_cpus')).toEqual([]);
  });

  test('a deleted VM is gone at the next scrape (a registry per scrape)', async () => {
    const gone = await insertVm(t.database.db, { poolId: team, ownerId: alice.id, name: 'short-lived' });
    expect((await scraped(root.token)).find('herd_vm_state', { vm: 'short-lived' })).toHaveLength(1);
    await t.database.db.deleteFrom('vms').where('id', '=', gone).execute();
    expect((await scraped(root.token)).find('herd_vm_state', { vm: 'short-lived' })).toEqual([]);
  });

  test('no token, a bad token, a malformed header: 401 with a Bearer challenge', async () => {
    for (const headers of [
      {},
      { authorization: 'Bearer not-a-token' },
      { authorization: 'Basic cm9vdDpy' },
    ]) {
      const res = await t.app.inject({ method: 'GET', url: '/metrics/fleet', headers });
      expect(res.statusCode).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer realm="herd"');
      expect(res.json()).toMatchObject({ error: 'unauthorized' });
    }
    const cookie = await t.app.inject({
      method: 'GET',
      url: '/metrics/fleet',
      cookies: { herd_session: root.token },
    });
    expect(cookie.statusCode).toBe(401);
  });
});
