import { expect, test } from 'vitest';
import { loadConfig } from '../../lib/config.js';
import { configProblems as problems } from '../../lib/testing/config.js';

const base = { HERD_LDAP_URL: 'ldap://127.0.0.1:389', HERD_LDAP_BASE_DN: 'ou=people,dc=x' };

test('LDAP settings: defaults, and the group → role mapping parsed (DNs contain "=")', () => {
  expect(loadConfig({}).ldap).toBeUndefined();
  const config = loadConfig({
    ...base,
    HERD_LDAP_GROUP_ROLES: 'cn=ops,ou=groups,dc=x=admin@1; cn=dev,ou=groups,dc=x=user@12;',
  });
  expect(config.ldap).toMatchObject({
    userFilter: '(uid={username})',
    usernameAttribute: 'uid',
    bindDn: undefined,
  });
  expect(config.ldap?.groupRoles).toEqual([
    { groupDn: 'cn=ops,ou=groups,dc=x', role: 'admin', poolId: 1 },
    { groupDn: 'cn=dev,ou=groups,dc=x', role: 'user', poolId: 12 },
  ]);
});

test('bad LDAP settings are named', () => {
  expect(problems({ ...base, HERD_LDAP_GROUP_ROLES: 'cn=ops=owner@1' })).toContain('HERD_LDAP_GROUP_ROLES');
  expect(problems({ ...base, HERD_LDAP_USER_FILTER: '(uid=x)' })).toContain('HERD_LDAP_USER_FILTER');
  expect(problems({ ...base, HERD_LDAP_URL: 'http://x' })).toContain('HERD_LDAP_URL');
  expect(problems({ HERD_LDAP_URL: 'ldap://x:389' })).toContain('HERD_LDAP_BASE_DN');
});
