import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import WebSocket from 'ws';
import { sharedHypervisor } from '../../lib/testing/hypervisor.js';
import { createPool, createUserWithToken, grantRole } from '../../lib/testing/users.js';
import { act, addRealHost, createVm, removeDomain } from './testing/real-host.js';
import { createFleet, type Fleet, type User } from './testing/vm-fleet.js';
import { vncOf } from './vm-console.service.js';

/**
 * The console's WebSocket proxy against a real libvirtd: a VM started through herd (no disk: its firmware
 * waits for a boot device, its VNC display is up all the same), RFB bytes both ways, and every refusal.
 */
const hv = sharedHypervisor();
const topic = `console-${randomUUID().slice(0, 6)}`;
let f: Fleet;
let base: string;
let owner: User;
let monitor: User;
let stranger: User;
let team: number;
let vm: { id: number; uuid: string } | undefined;

beforeAll(async () => {
  f = await createFleet();
  base = (await f.t.app.listen({ host: '127.0.0.1', port: 0 })).replace(/^http/, 'ws');
  const db = f.t.database.db;
  const rack = await createPool(db, { name: `${topic}-rack` });
  team = await createPool(db, { name: `${topic}-team`, kind: 'vm', parentId: rack });
  owner = await createUserWithToken(db, { username: `${topic}-owner`, password: 'owner-password-1' });
  monitor = await createUserWithToken(db, { username: `${topic}-monitor` });
  stranger = await createUserWithToken(db, { username: `${topic}-stranger` });
  await grantRole(db, team, owner.id, 'user');
  await grantRole(db, team, stranger.id, 'user');
  await grantRole(db, team, monitor.id, 'monitor');
  await addRealHost(f, hv.hosts[0].uri, rack);
  await f.worker();
  vm = await createVm(f, owner, {
    name: `${topic}-vm`,
    poolId: team,
    vcpus: 1,
    memoryMiB: 128,
    nics: [{ network: 'user' }],
  });
}, 60_000);

afterAll(async () => {
  if (f) await removeDomain(f, hv.hosts[0].uri, vm?.uuid);
  await f?.close();
});

const run = (action: string) => act(f, owner, vm!.id, action, 60_000);

/** Opens the console WebSocket: the first bytes the VNC server sent, or the HTTP status that refused it. */
function open(
  path: string,
  headers: Record<string, string>,
): Promise<{ ws: WebSocket; first: Buffer } | { status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${base}${path}`, ['binary'], { headers });
    ws.once('message', (data: Buffer) => resolve({ ws, first: data }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.once('error', reject);
  });
}

const bearer = (u: User) => ({ authorization: `Bearer ${u.token}` });

describe('the VM console over a WebSocket', () => {
  test('RFB both ways with the VNC server of the running domain', async () => {
    await run('start');
    const xml = await (await f.connections.get(hv.hosts[0].uri)).domainXml(vm!.uuid);
    const vnc = vncOf(xml);
    expect(vnc?.port).toBeGreaterThan(5900);

    const opened = await open(`/api/v1/vms/${vm!.id}/console`, bearer(owner));
    if (!('ws' in opened)) throw new Error(`refused: ${opened.status} ${opened.body}`);
    expect(opened.ws.protocol).toBe('binary');
    // qemu's VNC server speaks first: its protocol version. Answering it gets the security types.
    expect(opened.first.toString('latin1')).toMatch(/^RFB 003\.00\d\n$/);
    const security = new Promise<Buffer>((resolve) => opened.ws.once('message', resolve));
    opened.ws.send(Buffer.from('RFB 003.008\n', 'latin1'));
    const types = await security;
    expect(types[0]).toBeGreaterThan(0); // how many security types follow
    expect([...types.subarray(1, 1 + types[0])]).toContain(1); // 1: None (VNC without password on 127.0.0.1)
    opened.ws.close();
  });

  test('the session cookie of herd’s own pages, not another site’s', async () => {
    const session = await f.t.app.inject({
      method: 'POST',
      url: '/api/v1/session',
      payload: { username: `${topic}-owner`, password: 'owner-password-1' },
    });
    expect(session.statusCode).toBe(200);
    const cookie = `herd_session=${session.json().token}`;
    const host = new URL(base).host;
    const ok = await open(`/api/v1/vms/${vm!.id}/console`, { cookie, origin: `http://${host}` });
    expect('ws' in ok).toBe(true);
    if ('ws' in ok) ok.ws.close();
    const evil = await open(`/api/v1/vms/${vm!.id}/console`, { cookie, origin: 'http://evil.example' });
    expect(evil).toMatchObject({ status: 403 });
    expect((evil as { body: string }).body).toContain('origin_refused');
  });

  test('refusals: no credentials 401, view-only 403, invisible or unknown 404, plain GET 426', async () => {
    const path = `/api/v1/vms/${vm!.id}/console`;
    expect(await open(path, {})).toMatchObject({ status: 401 });
    expect(await open(path, bearer(monitor))).toMatchObject({ status: 403 });
    expect(await open(path, bearer(stranger))).toMatchObject({ status: 404 });
    expect(await open('/api/v1/vms/999999/console', bearer(owner))).toMatchObject({ status: 404 });
    expect(await open('/api/v1/vms/abc/console', bearer(owner))).toMatchObject({ status: 400 });
    const plain = await f.request(owner, 'GET', path);
    expect(plain.status).toBe(426);
    expect((await f.request(monitor, 'GET', path)).status).toBe(403);
  });

  test('a VM that is not running has no console (409)', async () => {
    await run('destroy');
    const res = await open(`/api/v1/vms/${vm!.id}/console`, bearer(owner));
    expect(res).toMatchObject({ status: 409 });
    expect((res as { body: string }).body).toContain('shutoff');
  });
});
