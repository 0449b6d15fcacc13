import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadConfig } from '../../lib/config.js';
import { createTestApp, type TestApp } from '../../lib/testing/app.js';
import { capturingLogger } from '../../lib/testing/capture-log.js';
import { type Kdc, negotiateToken, startKdc } from '../../lib/testing/kdc.js';
import { type Slapd, startSlapd } from '../../lib/testing/slapd.js';
import { authHeader, createUserWithToken } from '../../lib/testing/users.js';
import { LOGIN_FAILURES_PER_ADDRESS_PER_MINUTE } from './auth.routes.js';
import { createNegotiator } from './kerberos.js';

const run = promisify(execFile);

let kdc: Kdc;
let slapd: Slapd;
let keytab: string;
/** Herd with the directory: principals map to LDAP entries. */
let t: TestApp;
let base: string;
let logLines: string[];
let aliceCcache: string;
let daveCcache: string;
let carolCcache: string;
let aliceAdminCcache: string;

beforeAll(async () => {
  kdc = await startKdc({
    users: [
      { name: 'alice', password: 'alice-kerberos-pw' },
      { name: 'carol', password: 'carol-kerberos-pw' },
      { name: 'dave', password: 'dave-kerberos-pw' },
      // An instance principal of alice: an administrator's second identity, not a herd user.
      { name: 'alice/admin', password: 'alice-admin-kerberos-pw' },
    ],
    services: ['HTTP/localhost', 'HTTP/other.test'],
  });
  // Both keys in herd's keytab: herd must still accept only its own principal.
  keytab = await kdc.keytab(['HTTP/localhost', 'HTTP/other.test']);
  // herd's acceptor reads krb5.conf and its replay cache directory from this process's environment.
  Object.assign(process.env, kdc.env);
  slapd = await startSlapd({
    users: [
      { uid: 'alice', password: 'alice-directory-pw', cn: 'Alice Liddell', mail: 'alice@herd.test' },
      { uid: 'carol', password: 'carol-directory-pw' },
    ],
    groups: { ops: ['alice'] },
  });
  const captured = capturingLogger();
  logLines = captured.lines;
  t = await createTestApp({
    env: {
      ...slapd.env({ HERD_LDAP_GROUP_ROLES: `${slapd.groupDn('ops')}=monitor@1` }),
      HERD_KERBEROS_KEYTAB: keytab,
      HERD_KERBEROS_PRINCIPAL: 'HTTP@localhost',
    },
    deps: { log: captured.log },
  });
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://localhost:${(t.app.server.address() as AddressInfo).port}`;
  const admin = (await createUserWithToken(t.database.db, { username: 'root', superAdmin: true })).token;
  // Alice is added from the directory (as every directory user is); carol is in the directory only.
  const added = await t.app.inject({
    method: 'POST',
    url: '/api/v1/users',
    headers: authHeader(admin),
    payload: { username: 'alice', source: 'ldap' },
  });
  expect(added.statusCode).toBe(201);
  aliceCcache = await kdc.kinit('alice', 'alice-kerberos-pw');
  carolCcache = await kdc.kinit('carol', 'carol-kerberos-pw');
  daveCcache = await kdc.kinit('dave', 'dave-kerberos-pw');
  aliceAdminCcache = await kdc.kinit('alice/admin', 'alice-admin-kerberos-pw');
});
afterAll(async () => {
  await t?.close();
  await slapd?.stop();
  await kdc?.stop();
});

/** Debian's curl (built with GSS-API) doing SPNEGO as a browser does: a bare request, the 401, the token. */
async function curlNegotiate(method: 'GET' | 'POST', ccache: string, url = `${base}/api/v1/session`) {
  const headersFile = path.join(kdc.dir, `headers-${Math.random()}`);
  const port = new URL(url).port;
  const { stdout } = await run(
    'curl',
    [
      '-sS',
      '--negotiate',
      '-u',
      ':',
      '--resolve',
      `localhost:${port}:127.0.0.1`,
      '--resolve',
      `other.test:${port}:127.0.0.1`,
      '-X',
      method,
      '-D',
      headersFile,
      '-w',
      '\n%{http_code}',
      url,
    ],
    { env: { ...process.env, ...kdc.env, KRB5CCNAME: ccache }, timeout: 20_000 },
  );
  const lines = stdout.split('\n');
  const status = Number(lines.pop());
  return { status, body: JSON.parse(lines.join('\n')), headers: await readFile(headersFile, 'utf8') };
}

const session = (
  app: TestApp,
  options: { method?: 'GET' | 'POST'; authorization?: string; payload?: object; remoteAddress?: string } = {},
) =>
  app.app.inject({
    method: options.method ?? 'POST',
    url: '/api/v1/session',
    headers: options.authorization ? { authorization: options.authorization } : {},
    payload: options.payload,
    remoteAddress: options.remoteAddress,
  });
/** Each test its own client address: failures of one must not reach the failed-login limit of another. */
const negotiate = (token: string, remoteAddress: string, app = t) =>
  session(app, { authorization: `Negotiate ${token}`, remoteAddress });
const me = async (app: TestApp, token: string) =>
  (await app.app.inject({ method: 'GET', url: '/api/v1/me', headers: authHeader(token) })).json();

describe('Kerberos sign-on (SPNEGO) against a real MIT KDC', () => {
  test('curl --negotiate with a ticket from kinit: 200, a working session, the user of the LDAP entry', async () => {
    const res = await curlNegotiate('POST', aliceCcache);
    expect(res.status).toBe(200);
    // The answer carries the token of the mutual authentication (curl checks it).
    const answer = res.headers.trim().split('\r\n\r\n').at(-1);
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(answer).toMatch(/^www-authenticate: Negotiate [A-Za-z0-9+/=]+$/im);
    expect(answer).toMatch(/^set-cookie: herd_session=[^;]+;.*HttpOnly/im);
    expect(res.body).toMatchObject({ user: { username: 'alice', isSuperAdmin: false } });

    expect(await me(t, res.body.token)).toMatchObject({
      username: 'alice',
      source: 'ldap',
      displayName: 'Alice Liddell',
      email: 'alice@herd.test',
    });
    // Signed on through the directory: the group mapping applied as at a password login.
    const grants = await t.database.db
      .selectFrom('permissions')
      .innerJoin('users', 'users.id', 'permissions.user_id')
      .select(['pool_id', 'role', 'permissions.source'])
      .where('users.username', '=', 'alice')
      .execute();
    expect(grants).toEqual([{ pool_id: 1, role: 'monitor', source: 'ldap' }]);
  });

  test('GET /api/v1/session, as browsers sign on, works the same', async () => {
    const res = await curlNegotiate('GET', aliceCcache);
    expect(res.status).toBe(200);
    expect(res.body.user.username).toBe('alice');
    expect((await me(t, res.body.token)).username).toBe('alice');
  });

  test('no ticket: 401 advertising Negotiate, whichever method', async () => {
    const res = await curlNegotiate('POST', `FILE:${path.join(kdc.dir, 'empty-ccache')}`);
    expect(res.status).toBe(401);
    expect(res.headers).toMatch(/^www-authenticate: Negotiate$/im);
    const bare = await session(t, { method: 'GET' });
    expect(bare.statusCode).toBe(401);
    expect(bare.headers['www-authenticate']).toBe('Negotiate');
    expect(bare.json()).toMatchObject({ error: 'unauthorized', negotiate: true });
    expect(bare.json().refused).toBeUndefined();
    // A password login is still a password login; a bad one does not advertise Negotiate.
    const wrong = await session(t, { payload: { username: 'alice', password: 'wrong' } });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.headers['www-authenticate']).toBeUndefined();
    const bad = await session(t, { payload: { username: 'alice' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().field).toBe('password');
  });

  test('garbage, forged and replayed tokens: 401 with a clear message', async () => {
    for (const token of ['YWJjZGVm', 'not base64 at all!', `${'A'.repeat(400)}==`]) {
      const res = await negotiate(token, '192.0.2.1');
      expect(res.statusCode, token).toBe(401);
      expect(res.json().message).toMatch(/^Kerberos token refused/);
    }
    const token = await negotiateToken('HTTP@localhost', aliceCcache);
    // One flipped byte in the middle of the ticket: forged.
    const bytes = Buffer.from(token, 'base64');
    bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    expect((await negotiate(bytes.toString('base64'), '192.0.2.1')).statusCode).toBe(401);
    expect((await negotiate(token, '192.0.2.1')).statusCode).toBe(200);
    const replayed = await negotiate(token, '192.0.2.1');
    expect(replayed.statusCode).toBe(401);
    expect(replayed.json()).toMatchObject({
      message: expect.stringMatching(/replay/i),
      negotiate: true,
      refused: true,
    });
  });

  test('property: any Negotiate header, random bytes or text, is a 401 naming the refusal, never a 500', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ minLength: 1, maxLength: 2048 }).map((b) => Buffer.from(b).toString('base64')),
          fc.string({ minLength: 1, maxLength: 300 }).filter((v) => /^[\x21-\x7e][\x20-\x7e]*$/.test(v)),
        ),
        async (token) => {
          n++;
          const res = await negotiate(token, `198.51.${n >> 8}.${n & 255}`);
          expect(res.statusCode).toBe(401);
          expect(res.json().message).toMatch(/^Kerberos token refused: ./);
        },
      ),
      { numRuns: 200 },
    );
  });

  test('a stale token, its ticket expired since: 401', async () => {
    const shortLived = await kdc.kinit('alice', 'alice-kerberos-pw', '2s');
    const token = await negotiateToken('HTTP@localhost', shortLived);
    // Past the ticket's end and the one second of clock skew the test realm allows. (No client makes a fresh
    // token from an expired ticket, so what MIT krb5 refuses first is the authenticator's age.)
    await new Promise((r) => setTimeout(r, 3500));
    const res = await negotiate(token, '192.0.2.4');
    expect(res.statusCode).toBe(401);
    expect(res.json().message).toMatch(/^Kerberos token refused: .*(clock skew|expired)/i);
  });

  test('a ticket for another service, even one in the keytab: 401', async () => {
    const res = await curlNegotiate(
      'POST',
      aliceCcache,
      `${base.replace('localhost', 'other.test')}/api/v1/session`,
    );
    expect(res.status).toBe(401);
    const token = await negotiateToken('HTTP@other.test', aliceCcache);
    const direct = await negotiate(token, '192.0.2.2');
    expect(direct.statusCode).toBe(401);
    expect(direct.json().message).toMatch(/^Kerberos token refused/);
  });

  test('principals without a herd user: 401 naming them', async () => {
    const carol = await negotiate(await negotiateToken('HTTP@localhost', carolCcache), '192.0.2.3');
    expect(carol.statusCode).toBe(401);
    expect(carol.json().message).toBe('Kerberos principal carol@HERD.TEST is not an enabled herd user');
    const dave = await negotiate(await negotiateToken('HTTP@localhost', daveCcache), '192.0.2.3');
    expect(dave.statusCode).toBe(401);
    expect(dave.json().message).toBe('Kerberos principal dave@HERD.TEST has no entry in the directory');
  });

  test('an instance principal (alice/admin) is refused, although alice is a herd user in the directory', async () => {
    const token = await negotiateToken('HTTP@localhost', aliceAdminCcache);
    const res = await negotiate(token, '192.0.2.5');
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({
      message: 'Kerberos principal alice/admin@HERD.TEST is not a user principal',
      negotiate: true,
      refused: true,
    });
    expect(res.headers['set-cookie']).toBeUndefined();
    // Through a browser's way of signing on too.
    const curl = await curlNegotiate('GET', aliceAdminCcache);
    expect(curl.status).toBe(401);
    expect(curl.body.message).toBe('Kerberos principal alice/admin@HERD.TEST is not a user principal');
  });

  test('failed Kerberos logins count against the address; the bare challenge does not', async () => {
    const ip = '192.0.2.7';
    for (let i = 0; i < 3; i++) {
      const bare = await session(t, { method: 'GET', remoteAddress: ip });
      expect(bare.statusCode).toBe(401);
    }
    for (let i = 0; i < LOGIN_FAILURES_PER_ADDRESS_PER_MINUTE; i++) {
      expect((await negotiate('YWJjZGVm', ip)).statusCode).toBe(401);
    }
    const blocked = await negotiate(await negotiateToken('HTTP@localhost', aliceCcache), ip);
    expect(blocked.statusCode).toBe(429);
    expect(blocked.headers['retry-after']).toBeDefined();
    // Another address is not held up.
    expect(
      (await negotiate(await negotiateToken('HTTP@localhost', aliceCcache), '192.0.2.8')).statusCode,
    ).toBe(200);
  });

  test('neither tokens nor session tokens are logged', async () => {
    const token = await negotiateToken('HTTP@localhost', aliceCcache);
    const res = await negotiate(token, '192.0.2.9');
    expect(res.statusCode).toBe(200);
    const log = logLines.join('');
    expect(log).toContain('Kerberos sign-on');
    expect(log).not.toContain(token.slice(20, 60));
    expect(log).not.toContain(res.json().token);
  });
});

describe('Kerberos without a directory, and realms', () => {
  let plain: TestApp;
  let foreign: TestApp;
  beforeAll(async () => {
    const env = { HERD_KERBEROS_KEYTAB: keytab, HERD_KERBEROS_PRINCIPAL: 'HTTP@localhost' };
    plain = await createTestApp({ env });
    foreign = await createTestApp({ env: { ...env, HERD_KERBEROS_REALMS: 'OTHER.TEST, THIRD.TEST' } });
    await createUserWithToken(plain.database.db, { username: 'alice', password: 'local alice password' });
    await createUserWithToken(foreign.database.db, { username: 'alice', password: 'local alice password' });
  });
  afterAll(async () => {
    await plain?.close();
    await foreign?.close();
  });

  test('without LDAP the principal maps to the herd user of its name', async () => {
    const res = await negotiate(await negotiateToken('HTTP@localhost', aliceCcache), '127.0.0.1', plain);
    expect(res.statusCode).toBe(200);
    expect(await me(plain, res.json().token)).toMatchObject({ username: 'alice', source: 'local' });
  });

  test('a realm not accepted: 401 naming the realms that are', async () => {
    const res = await negotiate(await negotiateToken('HTTP@localhost', aliceCcache), '127.0.0.1', foreign);
    expect(res.statusCode).toBe(401);
    expect(res.json().message).toBe(
      'Kerberos principal alice@HERD.TEST: realm not accepted here (OTHER.TEST, THIRD.TEST)',
    );
  });

  test('a keytab without the configured principal stops herd at start, naming both', async () => {
    const other = await kdc.keytab(['HTTP/other.test']);
    const config = loadConfig({ HERD_KERBEROS_KEYTAB: other, HERD_KERBEROS_PRINCIPAL: 'HTTP@localhost' });
    await expect(createNegotiator(config.kerberos!, capturingLogger().log)).rejects.toThrow(
      /has no key for HTTP\/localhost.*HERD_KERBEROS_PRINCIPAL HTTP@localhost/,
    );
    // Put back the keytab the other apps of this file use.
    process.env.KRB5_KTNAME = `FILE:${keytab}`;
  });

  test('Negotiate where Kerberos is not configured: 401 saying so', async () => {
    const none = await createTestApp();
    try {
      const res = await negotiate('YWJjZGVm', '127.0.0.1', none);
      expect(res.statusCode).toBe(401);
      expect(res.json().message).toMatch(/not configured/);
      const get = await session(none, { method: 'GET' });
      expect(get.statusCode).toBe(401);
      expect(get.headers['www-authenticate']).toBeUndefined();
    } finally {
      await none.close();
    }
  });
});
