import { Attribute, Change, Client } from 'ldapts';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestApp, type TestApp } from '../../lib/testing/app.js';
import { type Slapd, startSlapd } from '../../lib/testing/slapd.js';
import { authHeader, createPool, createUserWithToken, grantRole } from '../../lib/testing/users.js';

let slapd: Slapd;
let t: TestApp;
let admin: string;
let devPool: number;

beforeAll(async () => {
  slapd = await startSlapd({
    users: [
      { uid: 'alice', password: 'alice-directory-pw', cn: 'Alice Liddell', mail: 'alice@herd.test' },
      { uid: 'bob', password: 'bob-directory-pw' },
      { uid: 'carol', password: 'carol-directory-pw' },
    ],
    groups: { ops: ['alice'], devs: ['alice', 'bob'] },
  });
  // Pool ids are fixed in a fresh database: the default pool is 1, the next one made is 2.
  t = await createTestApp({
    env: slapd.env({
      HERD_LDAP_GROUP_ROLES: `${slapd.groupDn('ops')}=monitor@1; ${slapd.groupDn('devs')}=user@2`,
    }),
  });
  devPool = await createPool(t.database.db, { name: 'dev' });
  expect(devPool).toBe(2);
  admin = (await createUserWithToken(t.database.db, { username: 'root', superAdmin: true })).token;
});
afterAll(async () => {
  await t?.close();
  await slapd?.stop();
});

const login = (username: string, password: string) =>
  t.app.inject({ method: 'POST', url: '/api/v1/session', payload: { username, password } });
const addUser = (payload: object) =>
  t.app.inject({ method: 'POST', url: '/api/v1/users', headers: authHeader(admin), payload });
const grantsOf = async (username: string) =>
  t.database.db
    .selectFrom('permissions')
    .innerJoin('users', 'users.id', 'permissions.user_id')
    .select(['pool_id', 'role', 'permissions.source'])
    .where('users.username', '=', username)
    .orderBy('pool_id')
    .execute();

describe('directory users', () => {
  test('the super-admin lists the directory and adds users from it', async () => {
    const list = await t.app.inject({
      method: 'GET',
      url: '/api/v1/directory/users',
      headers: authHeader(admin),
    });
    expect(list.statusCode).toBe(200);
    expect(list.json().items).toEqual([
      {
        dn: slapd.userDn('alice'),
        username: 'alice',
        displayName: 'Alice Liddell',
        email: 'alice@herd.test',
        userId: null,
      },
      { dn: slapd.userDn('bob'), username: 'bob', displayName: 'bob', email: null, userId: null },
      { dn: slapd.userDn('carol'), username: 'carol', displayName: 'carol', email: null, userId: null },
    ]);

    const added = await addUser({ username: 'alice', source: 'ldap' });
    expect(added.statusCode).toBe(201);
    expect(added.json()).toMatchObject({
      username: 'alice',
      source: 'ldap',
      displayName: 'Alice Liddell',
      email: 'alice@herd.test',
    });
    const again = await t.app.inject({
      method: 'GET',
      url: '/api/v1/directory/users',
      headers: authHeader(admin),
    });
    expect(again.json().items[0].userId).toBe(added.json().id);
  });

  test('a directory user has no password here and must exist in the directory', async () => {
    const withPassword = await addUser({ username: 'bob', source: 'ldap', password: 'whatever-long' });
    expect(withPassword.statusCode).toBe(400);
    expect(withPassword.json().field).toBe('password');
    const unknown = await addUser({ username: 'mallory', source: 'ldap' });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().field).toBe('username');
  });
});

describe('LDAP login', () => {
  test('binds as the user: the directory password works, a wrong one does not', async () => {
    const ok = await login('alice', 'alice-directory-pw');
    expect(ok.statusCode).toBe(200);
    expect(ok.json().user.username).toBe('alice');
    expect((await login('alice', 'wrong')).statusCode).toBe(401);
    // In the directory but not added to herd.
    expect((await login('carol', 'carol-directory-pw')).statusCode).toBe(401);
  });

  test('filter metacharacters in the username are escaped', async () => {
    expect((await addUser({ username: 'al*', source: 'ldap' })).statusCode).toBe(400);
    // Unescaped, (uid=ali*) would find alice and her password would log "ali*" in.
    await t.database.db
      .insertInto('users')
      .values({ username: 'ali*', source: 'ldap', password_hash: null, is_super_admin: false })
      .execute();
    expect((await login('ali*', 'alice-directory-pw')).statusCode).toBe(401);
  });

  test('group membership maps to roles at each login; manual grants stay', async () => {
    expect((await addUser({ username: 'bob', source: 'ldap' })).statusCode).toBe(201);
    await login('alice', 'alice-directory-pw');
    expect(await grantsOf('alice')).toEqual([
      { pool_id: 1, role: 'monitor', source: 'ldap' },
      { pool_id: devPool, role: 'user', source: 'ldap' },
    ]);
    const aliceId = (
      await t.database.db
        .selectFrom('users')
        .select('id')
        .where('username', '=', 'alice')
        .executeTakeFirstOrThrow()
    ).id;
    const manualPool = await createPool(t.database.db, { name: 'manual' });
    await grantRole(t.database.db, manualPool, aliceId, 'admin');

    // Alice leaves ops: her next login drops the mapped role, keeps the rest.
    const client = new Client({ url: slapd.url });
    await client.bind(slapd.bindDn, slapd.bindPassword);
    await client.modify(
      slapd.groupDn('ops'),
      new Change({
        operation: 'replace',
        modification: new Attribute({ type: 'member', values: [slapd.userDn('bob')] }),
      }),
    );
    await client.unbind();
    expect((await login('alice', 'alice-directory-pw')).statusCode).toBe(200);
    expect(await grantsOf('alice')).toEqual([
      { pool_id: devPool, role: 'user', source: 'ldap' },
      { pool_id: manualPool, role: 'admin', source: 'manual' },
    ]);

    // Bob is in both now; the stronger mapping per pool wins, and the changes are audited.
    await login('bob', 'bob-directory-pw');
    expect(await grantsOf('bob')).toEqual([
      { pool_id: 1, role: 'monitor', source: 'ldap' },
      { pool_id: devPool, role: 'user', source: 'ldap' },
    ]);
    const audit = await t.app.inject({
      method: 'GET',
      url: '/api/v1/audit?entityType=permission',
      headers: authHeader(admin),
    });
    expect(audit.json().items.map((e: { action: string }) => e.action)).toContain('permission.delete');
  });

  test('a directory that does not answer: 503, not a crash', async () => {
    await slapd.stop();
    const res = await login('alice', 'alice-directory-pw');
    expect(res.statusCode).toBe(503);
    expect(res.json().error).toBe('directory_unavailable');
  });
});
