import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestApp, type TestApp } from '../../lib/testing/app.js';
import { capturingLogger } from '../../lib/testing/capture-log.js';
import { sharedHypervisor } from '../../lib/testing/hypervisor.js';
import { writeTestHost } from '../../lib/testing/libvirt-hosts.js';
import { forwardTcpToUnix } from '../../lib/testing/tcp-forward.js';
import { authHeader, createPool, createUserWithToken, grantRole } from '../../lib/testing/users.js';
import { HostConnections } from './driver/index.js';

/**
 * Issue 29: URIs that made libvirt run a program as root or echo a local file, against the real app, the real
 * libvirt client and the suite's real libvirtd. A script that would leave a marker file stands for the
 * attacker's program.
 */
const captured = capturingLogger();
const connections = new HostConnections(captured.log);
let t: TestApp;
let dir: string;
let script: string;
let marker: string;
let admin: { id: number; token: string };
let poolAdmin: { id: number; token: string };
let defaultAdmin: { id: number; token: string };
let rack: number;
let forward: { port: number; close(): Promise<void> };

beforeAll(async () => {
  t = await createTestApp({ deps: { hostConnections: connections, log: captured.log } });
  dir = await mkdtemp(path.join(tmpdir(), 'herd-host-uri-'));
  marker = path.join(dir, 'ran');
  script = path.join(dir, 'payload.sh');
  await writeFile(script, `#!/bin/sh\ntouch '${marker}'\n`);
  await chmod(script, 0o755);
  const db = t.database.db;
  admin = await createUserWithToken(db, { username: 'root', superAdmin: true });
  poolAdmin = await createUserWithToken(db, { username: 'rackadmin' });
  defaultAdmin = await createUserWithToken(db, { username: 'registrar' });
  rack = await createPool(db, { name: 'rack-a' });
  await grantRole(db, rack, poolAdmin.id, 'admin');
  await grantRole(db, 1, defaultAdmin.id, 'admin');
  forward = await forwardTcpToUnix(sharedHypervisor().hosts[0].socket);
});
afterAll(async () => {
  await t.close();
  await connections.closeAll();
  await forward.close();
  await rm(dir, { recursive: true, force: true });
});

const addHost = (user: { token: string }, uri: string, poolId = rack) =>
  t.app.inject({
    method: 'POST',
    url: '/api/v1/hosts',
    headers: authHeader(user.token),
    payload: { uri, poolId },
  });
const register = (user: { token: string }, uri: string) =>
  t.app.inject({
    method: 'POST',
    url: '/api/v1/hosts/register',
    headers: authHeader(user.token),
    payload: { uri, hostname: `h-${randomUUID().slice(0, 6)}`, cpus: 4, memoryMiB: 4096 },
  });
const exists = (file: string) =>
  readFile(file).then(
    () => true,
    () => false,
  );

/** A TCP port on 127.0.0.1 nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('URIs that make libvirt run a program: refused to everyone, nothing runs', () => {
  const attacks = () => [
    `qemu+ext:///system?command=${script}`,
    `QEMU+Ext:///system?command=${script}`,
    `qemu+ssh://127.0.0.1/system?command=${script}`,
    `qemu+ssh://127.0.0.1/system?COMMAND=${script}`,
    `qemu+ssh://127.0.0.1/system?%63ommand=${script}`,
    `qemu+ssh://127.0.0.1/system?c%6fmmand=${encodeURIComponent(script)}`,
    `qemu+ssh://127.0.0.1/system?mode=auto&command=/bin/true&command=${script}`,
    `qemu+ssh://127.0.0.1/system?netcat=${script}`,
    `qemu+ssh://127.0.0.1/system?name=qemu+ext:///system%3Fcommand%3D${script}`,
    `qemu+ext:///system?command=${script}#x`,
    `qemu+ssh://host/system?command=${script}`,
  ];

  test('POST /hosts, by the pool admin and by the super-admin', async () => {
    for (const uri of attacks()) {
      for (const user of [poolAdmin, admin]) {
        const res = await addHost(user, uri);
        expect(await exists(marker), `${uri} ran the script`).toBe(false);
        expect(res.statusCode, uri).toBe(400);
        expect(res.json(), uri).toMatchObject({ error: 'bad_request', field: 'uri' });
        expect(res.json().message, uri).toMatch(/run a program|ext transport|another URI|fragment/);
        expect(res.json().message, uri).toContain('docs/host-uris.md');
      }
    }
    expect(await exists(marker)).toBe(false);
  });

  test('POST /hosts/register stores nothing and runs nothing either', async () => {
    for (const uri of attacks()) {
      const res = await register(defaultAdmin, uri);
      expect(res.statusCode, uri).toBe(400);
      expect(res.json().field, uri).toBe('uri');
    }
    expect(await exists(marker)).toBe(false);
    const stored = await t.database.db.selectFrom('hosts').select('uri').execute();
    expect(stored.filter((h) => h.uri.includes(script))).toEqual([]);
  });
});

describe('local files and sockets: the super-admin only', () => {
  test('test:///etc/shadow: refused before libvirt opens it, and no line of it in the answer', async () => {
    const firstLine = (await readFile('/etc/shadow', 'utf8')).split('\n')[0];
    for (const user of [poolAdmin, admin]) {
      const res = await addHost(user, 'test:///etc/shadow');
      expect(res.statusCode).toBe(400);
      expect(res.json().message).toContain('.xml');
      expect(res.body).not.toContain(firstLine);
    }
  });

  test("a pool admin gets 403 for a test file, a socket, a key file, no_verify; libvirt's text never", async () => {
    const secret = path.join(dir, 'secret.xml');
    const words = `herd-secret-${randomUUID()}`;
    await writeFile(secret, `${words}\n`);
    const { socket } = sharedHypervisor().hosts[0];
    for (const [uri, word] of [
      [`test://${secret}`, 'only the super-admin'],
      [`test:///${secret}`, 'only the super-admin'],
      ['test:///default', 'only the super-admin'],
      ['qemu:///system', 'only the super-admin'],
      [`qemu+unix:///system?socket=${socket}`, 'socket'],
      [`test+unix:///default?socket=${socket}`, 'socket'],
      ['qemu+unix:///system', 'qemu+unix'],
      ['qemu+ssh://127.0.0.1/system?keyfile=/root/.ssh/id_rsa', 'keyfile'],
      ['qemu+ssh://127.0.0.1/system?no_verify=1', 'no_verify'],
      ['qemu+ssh://127.0.0.1/system?No_Verify=1', 'no_verify'],
      ['qemu+tls://127.0.0.1/system?pkipath=/etc/pki', 'pkipath'],
    ]) {
      const res = await addHost(poolAdmin, uri);
      expect(res.statusCode, uri).toBe(403);
      expect(res.json(), uri).toMatchObject({ error: 'forbidden', field: 'uri' });
      expect(res.json().message, uri).toContain(word);
      expect(res.body, uri).not.toContain(words);
      const registered = await register(defaultAdmin, uri);
      expect(registered.statusCode, uri).toBe(403);
    }
    // The super-admin, who may name the file, may read libvirt's words about it.
    const bySuper = await addHost(admin, `test://${secret}`);
    expect(bySuper.statusCode).toBe(400);
    expect(bySuper.json().error).toBe('host_unreachable');
  });

  test('the super-admin adds the real libvirtd socket and test-driver files; "//" is the same host', async () => {
    const { uri } = sharedHypervisor().hosts[0];
    const real = await addHost(admin, uri);
    expect(real.statusCode, real.body).toBe(201);
    expect(real.json().uri).toBe(uri);
    const file = await writeTestHost(dir, { name: 'rack-a-01', cpus: 4, memoryMiB: 4096 });
    expect(file.startsWith('test:///')).toBe(true);
    const first = await addHost(admin, file);
    expect(first.statusCode).toBe(201);
    for (const again of [
      file.replace('test:///', 'test:////'),
      file.replace(/\/([^/]+)$/, '//$1'),
      `TEST://${file.slice(7)}`,
    ]) {
      const res = await addHost(admin, again);
      expect(res.statusCode, again).toBe(409);
      expect(res.json().error).toBe('host_exists');
    }
    const count = await t.database.db
      .selectFrom('hosts')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('hostname', '=', 'rack-a-01')
      .executeTakeFirstOrThrow();
    expect(Number(count.n)).toBe(1);
  });
});

describe('network transports: what a pool admin may add', () => {
  test('the suite libvirtd reached over TCP on loopback: added in normal form, once', async () => {
    const res = await addHost(poolAdmin, `QEMU+TCP://127.0.0.1:${forward.port}//system`);
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json().uri).toBe(`qemu+tcp://127.0.0.1:${forward.port}/system`);
    expect(res.json().cpus).toBeGreaterThan(0);
    const again = await addHost(poolAdmin, `qemu+tcp://127.0.0.1:${forward.port}/system/`);
    expect(again.statusCode).toBe(409);
  });

  test("an unreachable host: 400 host_unreachable naming the URI and transport, libvirt's text only logged", async () => {
    const port = await closedPort();
    captured.lines.length = 0;
    const res = await addHost(poolAdmin, `qemu+tcp://127.0.0.1:${port}/system`);
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: 'host_unreachable', field: 'uri' });
    expect(res.json().message).toContain(`qemu+tcp://127.0.0.1:${port}/system over tcp`);
    expect(res.json().message).not.toMatch(/refused|unable to connect/i);
    const warned = captured.lines.map((l) => JSON.parse(l)).find((l) => l.msg?.includes('could not be read'));
    expect(warned).toMatchObject({ level: 40 });
    expect(JSON.stringify(warned.err)).toMatch(/refused/i);

    const bySuper = await addHost(admin, `qemu+tcp://127.0.0.1:${port}/system`);
    expect(bySuper.statusCode).toBe(400);
    expect(bySuper.json().message).toMatch(/refused/i);
  });

  test('registration stores the normal form: the same host announced two ways is one', async () => {
    const first = await register(defaultAdmin, 'qemu+ssh://root@HV9.Example:22//system?no_tty=1&mode=auto');
    expect(first.statusCode, first.body).toBe(201);
    const again = await register(defaultAdmin, 'qemu+ssh://root@hv9.example/system?mode=auto&no_tty=1');
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ id: first.json().id, created: false });
    const row = await t.database.db
      .selectFrom('hosts')
      .select('uri')
      .where('id', '=', first.json().id)
      .executeTakeFirstOrThrow();
    expect(row.uri).toBe('qemu+ssh://root@hv9.example/system?mode=auto&no_tty=1');
  });
});

describe('the driver: the last gate before libvirt', () => {
  test('a URI stored before the rule (a row written directly) is never opened; nor a migration destination', async () => {
    const uri = `qemu+ext:///system?command=${script}`;
    await t.database.db
      .insertInto('hosts')
      .values({ pool_id: rack, uri, hostname: 'planted', cpus: 1, memory_mib: 1024, enabled: true })
      .execute();
    await expect(connections.get(uri)).rejects.toThrow(/ext transport/);
    await expect(connections.get(`qemu+ssh://127.0.0.1/system?Command=${script}`)).rejects.toThrow(
      /run a program/,
    );
    const real = await connections.get(sharedHypervisor().hosts[0].uri);
    await expect(real.migrateLive(randomUUID(), uri)).rejects.toThrow(/ext transport/);
    expect(await exists(marker)).toBe(false);
  });
});

test('the OpenAPI document states the rule where it describes uri', async () => {
  const doc = (await t.app.inject({ method: 'GET', url: '/api/docs/json' })).json();
  for (const p of ['/api/v1/hosts', '/api/v1/hosts/register']) {
    const body = doc.paths[p].post.requestBody.content['application/json'].schema;
    expect(body.properties.uri.description, p).toContain('docs/host-uris.md');
    expect(body.properties.uri.description, p).toContain('Never: the ext transport, command, netcat');
  }
});
