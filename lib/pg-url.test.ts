import { describe, expect, test } from 'vitest';
import { ConfigError, loadConfig } from './config.js';
import { fits } from './pg-failover.js';
import { formatHosts, isMultiHostUrl, PgUrlError, parsePgUrl, redactPgUrl } from './pg-url.js';

describe('parsePgUrl: libpq connection URIs', () => {
  test('several hosts, each with its port or none, user, password, database, target_session_attrs', () => {
    expect(
      parsePgUrl('postgres://herd:s3cret@db1:5433,db2,db3:6000/herd?target_session_attrs=read-write'),
    ).toEqual({
      hosts: [
        { host: 'db1', port: 5433 },
        { host: 'db2', port: 5432 },
        { host: 'db3', port: 6000 },
      ],
      user: 'herd',
      password: 's3cret',
      database: 'herd',
      targetSessionAttrs: 'read-write',
      params: {},
    });
  });

  test('postgresql:// too; nothing but the scheme: pg defaults, any host', () => {
    expect(parsePgUrl('postgresql://')).toEqual({
      hosts: [{ host: '', port: 5432 }],
      targetSessionAttrs: 'any',
      params: {},
    });
  });

  test('percent-encoding: user, password, database, hosts (a socket directory) and parameter values', () => {
    const t = parsePgUrl(
      'postgres://us%40er:p%3Aa%2Fss%25@%2Fvar%2Frun%2Fpostgresql,db2:5433/my%20db?application_name=herd%20api',
    );
    expect(t.user).toBe('us@er');
    expect(t.password).toBe('p:a/ss%');
    expect(t.hosts).toEqual([
      { host: '/var/run/postgresql', port: 5432 },
      { host: 'db2', port: 5433 },
    ]);
    expect(t.database).toBe('my db');
    expect(t.params).toEqual({ application_name: 'herd api' });
  });

  test('IPv6 addresses in brackets, with and without a port', () => {
    expect(parsePgUrl('postgres://[::1]:5433,[fe80::1%25eth0],127.0.0.1:5434/x').hosts).toEqual([
      { host: '::1', port: 5433 },
      { host: 'fe80::1%eth0', port: 5432 },
      { host: '127.0.0.1', port: 5434 },
    ]);
  });

  test('host= and port= parameters replace the authority; one port applies to every host', () => {
    expect(parsePgUrl('postgres://ignored:1/db?host=a,b,c&port=7000').hosts).toEqual([
      { host: 'a', port: 7000 },
      { host: 'b', port: 7000 },
      { host: 'c', port: 7000 },
    ]);
    expect(parsePgUrl('postgres:///db?host=a,b&port=7000,7001').hosts).toEqual([
      { host: 'a', port: 7000 },
      { host: 'b', port: 7001 },
    ]);
    expect(parsePgUrl('postgres://a,b/db?port=,7001').hosts).toEqual([
      { host: 'a', port: 5432 },
      { host: 'b', port: 7001 },
    ]);
    expect(parsePgUrl('postgres://x/db?user=u&password=p&dbname=other')).toMatchObject({
      user: 'u',
      password: 'p',
      database: 'other',
    });
  });

  test('every target_session_attrs value of libpq; connect_timeout as libpq reads it', () => {
    for (const v of ['any', 'read-write', 'read-only', 'primary', 'standby', 'prefer-standby'])
      expect(parsePgUrl(`postgres://a,b/db?target_session_attrs=${v}`).targetSessionAttrs).toBe(v);
    expect(parsePgUrl('postgres://a/db?connect_timeout=5').connectTimeoutSeconds).toBe(5);
    expect(parsePgUrl('postgres://a/db?connect_timeout=1').connectTimeoutSeconds).toBe(2);
    expect(parsePgUrl('postgres://a/db?connect_timeout=0').connectTimeoutSeconds).toBe(0);
  });

  test('refused with a reason that never shows the password', () => {
    const bad = [
      ['mysql://a/db', /postgres:\/\//],
      ['postgres://a,b/db?target_session_attrs=readwrite', /invalid target_session_attrs "readwrite"/],
      ['postgres://a,b,c/db?port=1,2', /could not match 2 port numbers to 3 hosts/],
      ['postgres://a:99999,b/db', /invalid port number "99999"/],
      ['postgres://a:http,b/db', /invalid port number "http"/],
      ['postgres://u:pa%ZZword@a,b/db', /invalid percent-encoding in the password/],
      ['postgres://u:pass%00word@a,b/db', /forbidden value %00 in the password/],
      ['postgres://[::1,b/db', /unterminated IPv6/],
      ['postgres://a,b/db?sslmode', /has no "="/],
      ['postgres://a,b/db?connect_timeout=soon', /invalid connect_timeout/],
    ] as const;
    for (const [url, reason] of bad) {
      let error: unknown;
      try {
        parsePgUrl(url);
      } catch (err) {
        error = err;
      }
      expect(error, url).toBeInstanceOf(PgUrlError);
      expect((error as Error).message, url).toMatch(reason);
      expect((error as Error).message).not.toMatch(/%ZZword|%00word/);
    }
  });

  test('which URLs take the multi-host path: single-host URLs stay with node-postgres as before', () => {
    expect(isMultiHostUrl('postgres://u:p@127.0.0.1:5432/herd')).toBe(false);
    expect(isMultiHostUrl('postgres://u:p,q@127.0.0.1:5432/herd')).toBe(false);
    expect(isMultiHostUrl('postgres:///herd?host=/var/run/postgresql')).toBe(false);
    expect(isMultiHostUrl('postgres://a:1,b:2/herd')).toBe(true);
    expect(isMultiHostUrl('postgresql://a/herd?target_session_attrs=read-write')).toBe(true);
    expect(isMultiHostUrl('postgres:///herd?host=a,b')).toBe(true);
    expect(isMultiHostUrl('postgres:///herd?host=a%2Cb')).toBe(true);
  });

  test('hosts written back and the URL without its password, for logs', () => {
    const t = parsePgUrl('postgres://herd:s3cret@db1,[::1]:5433,%2Ftmp/herd');
    expect(formatHosts(t.hosts)).toBe('db1:5432,[::1]:5433,%2Ftmp:5432');
    expect(redactPgUrl(t)).toBe('postgres://herd@db1:5432,[::1]:5433,%2Ftmp:5432/herd');
  });
});

test('which session fits which target_session_attrs', () => {
  const primary = { recovery: false, readOnly: false };
  const standby = { recovery: true, readOnly: true };
  const readOnlyPrimary = { recovery: false, readOnly: true };
  const table = (s: typeof primary) =>
    (['any', 'read-write', 'read-only', 'primary', 'standby', 'prefer-standby'] as const).map((a) =>
      fits(s, a),
    );
  expect(table(primary)).toEqual([true, true, false, true, false, true]);
  expect(table(standby)).toEqual([true, false, true, false, true, true]);
  expect(table(readOnlyPrimary)).toEqual([true, false, true, true, false, true]);
});

test('DATABASE_URL: a multi-host URL is accepted, a bad one refused with the reason, single-host as before', () => {
  const multi = 'postgres://herd:pw@db1:5432,db2:5432/herd?target_session_attrs=read-write';
  expect(loadConfig({ DATABASE_URL: multi }).databaseUrl).toBe(multi);
  expect(loadConfig({ DATABASE_URL: 'postgres://herd:pw@db1:5432/herd' }).databaseUrl).toBe(
    'postgres://herd:pw@db1:5432/herd',
  );
  expect(() => loadConfig({ DATABASE_URL: 'not a url' })).toThrow(ConfigError);
  expect(() => loadConfig({ DATABASE_URL: 'postgres://a,b/herd?target_session_attrs=maybe' })).toThrow(
    /DATABASE_URL.*invalid target_session_attrs/,
  );
});
