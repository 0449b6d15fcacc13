import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'ldapts';
import { freePort } from '../embedded-postgres.js';
import { startDaemon } from './daemon.js';

const run = promisify(execFile);

export const SLAPD_SUFFIX = 'dc=herd,dc=test';
export const SLAPD_ROOT_DN = `cn=admin,${SLAPD_SUFFIX}`;
export const SLAPD_ROOT_PASSWORD = 'slapd-root-secret';

export interface TestDirectoryUser {
  uid: string;
  password: string;
  cn?: string;
  mail?: string;
}

export interface Slapd {
  url: string;
  baseDn: string;
  /** The service account herd binds as (HERD_LDAP_BIND_DN / _PASSWORD). */
  bindDn: string;
  bindPassword: string;
  /** `cn=<name>,ou=groups,<suffix>` */
  groupDn(name: string): string;
  userDn(uid: string): string;
  /** Environment for herd's config (loadConfig). */
  env(extra?: Record<string, string>): Record<string, string>;
  stop(): Promise<void>;
}

/**
 * A real OpenLDAP slapd (Debian's `slapd`) on a free loopback port with an mdb database in a temporary
 * directory, loaded with `ldapadd`: ou=people with the given users, ou=groups with groupOfNames groups.
 */
export async function startSlapd(options: {
  users: TestDirectoryUser[];
  groups?: Record<string, string[]>;
}): Promise<Slapd> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'herd-slapd-'));
  await mkdir(path.join(dir, 'data'));
  const port = await freePort();
  const url = `ldap://127.0.0.1:${port}`;
  const conf = path.join(dir, 'slapd.conf');
  await writeFile(
    conf,
    `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile ${path.join(dir, 'slapd.pid')}
database mdb
maxsize 10485760
suffix "${SLAPD_SUFFIX}"
rootdn "${SLAPD_ROOT_DN}"
rootpw ${SLAPD_ROOT_PASSWORD}
directory ${path.join(dir, 'data')}
access to attrs=userPassword by anonymous auth by self write by * none
access to * by * read
`,
  );

  // -d keeps slapd in the foreground, tied to this process.
  const slapd = startDaemon('slapd', ['-f', conf, '-h', `${url}/`, '-d', '0']);
  const stop = async () => {
    await slapd.stop();
    await rm(dir, { recursive: true, force: true });
  };

  try {
    await waitForBind(url, () => slapd.child.exitCode, slapd.stderr);
    const groups = options.groups ?? {};
    const ldif = [
      `dn: ${SLAPD_SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: herd\no: herd test`,
      `dn: ou=people,${SLAPD_SUFFIX}\nobjectClass: organizationalUnit\nou: people`,
      `dn: ou=groups,${SLAPD_SUFFIX}\nobjectClass: organizationalUnit\nou: groups`,
      ...options.users.map(
        (u) =>
          `dn: uid=${u.uid},ou=people,${SLAPD_SUFFIX}\nobjectClass: inetOrgPerson\nuid: ${u.uid}\n` +
          `cn: ${u.cn ?? u.uid}\nsn: ${u.uid}\nuserPassword: ${u.password}` +
          (u.mail ? `\nmail: ${u.mail}` : ''),
      ),
      ...Object.entries(groups).map(
        ([name, members]) =>
          `dn: cn=${name},ou=groups,${SLAPD_SUFFIX}\nobjectClass: groupOfNames\ncn: ${name}\n` +
          // groupOfNames needs at least one member.
          (members.length ? members : ['nobody'])
            .map((m) => `member: uid=${m},ou=people,${SLAPD_SUFFIX}`)
            .join('\n'),
      ),
    ].join('\n\n');
    const file = path.join(dir, 'seed.ldif');
    await writeFile(file, `${ldif}\n`);
    await run('ldapadd', ['-x', '-H', url, '-D', SLAPD_ROOT_DN, '-w', SLAPD_ROOT_PASSWORD, '-f', file], {
      timeout: 10_000,
    });
  } catch (err) {
    await stop();
    throw err;
  }

  const groupDn = (name: string) => `cn=${name},ou=groups,${SLAPD_SUFFIX}`;
  return {
    url,
    baseDn: SLAPD_SUFFIX,
    bindDn: SLAPD_ROOT_DN,
    bindPassword: SLAPD_ROOT_PASSWORD,
    groupDn,
    userDn: (uid) => `uid=${uid},ou=people,${SLAPD_SUFFIX}`,
    env: (extra = {}) => ({
      HERD_LDAP_URL: url,
      HERD_LDAP_BASE_DN: `ou=people,${SLAPD_SUFFIX}`,
      HERD_LDAP_BIND_DN: SLAPD_ROOT_DN,
      HERD_LDAP_BIND_PASSWORD: SLAPD_ROOT_PASSWORD,
      ...extra,
    }),
    stop,
  };
}

async function waitForBind(url: string, exitCode: () => number | null, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (exitCode() !== null) throw new Error(`slapd exited with ${exitCode()}: ${stderr()}`);
    const client = new Client({ url, connectTimeout: 1000, timeout: 1000 });
    try {
      await client.bind(SLAPD_ROOT_DN, SLAPD_ROOT_PASSWORD);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      await client.unbind().catch(() => undefined);
    }
  }
  throw new Error(`slapd did not answer on ${url} within 20 s: ${stderr()}`);
}
