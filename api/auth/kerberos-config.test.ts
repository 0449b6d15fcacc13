import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { loadConfig } from '../../lib/config.js';
import { configProblems as problems } from '../../lib/testing/config.js';

let dir: string;
let keytab: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'herd-keytab-'));
  keytab = path.join(dir, 'herd.keytab');
  // Config only checks that the file can be read; its keys are checked when the API starts (kerberos.test.ts).
  await writeFile(keytab, Buffer.from([5, 2]));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

test('Kerberos settings: off without a keytab; the principal defaults to HTTP@<this host>', () => {
  expect(loadConfig({}).kerberos).toBeUndefined();
  expect(loadConfig({ HERD_KERBEROS_KEYTAB: keytab }).kerberos).toEqual({
    keytab,
    principal: `HTTP@${os.hostname()}`,
    realms: [],
  });
  expect(
    loadConfig({
      HERD_KERBEROS_KEYTAB: keytab,
      HERD_KERBEROS_PRINCIPAL: 'HTTP@herd.example.com',
      HERD_KERBEROS_REALMS: 'EXAMPLE.COM, corp.example.com',
    }).kerberos,
  ).toMatchObject({ principal: 'HTTP@herd.example.com', realms: ['EXAMPLE.COM', 'corp.example.com'] });
});

test('bad Kerberos settings are named', () => {
  const missing = path.join(dir, 'missing.keytab');
  expect(problems({ HERD_KERBEROS_KEYTAB: missing })).toBe(
    `HERD_KERBEROS_KEYTAB: cannot read ${missing} (ENOENT)`,
  );
  expect(
    problems({ HERD_KERBEROS_KEYTAB: keytab, HERD_KERBEROS_PRINCIPAL: 'HTTP/herd@EXAMPLE.COM' }),
  ).toContain('HERD_KERBEROS_PRINCIPAL');
  expect(problems({ HERD_KERBEROS_KEYTAB: keytab, HERD_KERBEROS_REALMS: 'A.COM;B.COM' })).toContain(
    'HERD_KERBEROS_REALMS',
  );
  expect(problems({ HERD_KERBEROS_PRINCIPAL: 'HTTP@herd', HERD_KERBEROS_REALMS: 'A.COM' })).toBe(
    'HERD_KERBEROS_PRINCIPAL: needs HERD_KERBEROS_KEYTAB\nHERD_KERBEROS_REALMS: needs HERD_KERBEROS_KEYTAB',
  );
});
