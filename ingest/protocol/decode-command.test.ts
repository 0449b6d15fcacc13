import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DecodeCommandOptions, runDecode } from './decode-command.js';
import {
  type ExpectedNotification,
  type ExpectedValues,
  expectedRecords,
  FIXTURE_TYPES_DB,
  FIXTURES_DIR,
  type FixtureFolder,
  fixturePackets,
} from './test-fixtures.js';
import { BUNDLED_TYPES_DB, loadTypesDb } from './types-db.js';

async function decode(files: string[], opts: DecodeCommandOptions = {}) {
  let stdout = '';
  let stderr = '';
  const code = await runDecode(
    files,
    { baseTypesDb: FIXTURE_TYPES_DB, ...opts },
    { write: (s: string) => (stdout += s) },
    { write: (s: string) => (stderr += s) },
  );
  return { code, lines: stdout.split('\n').filter((l) => l !== ''), stderr };
}

/** The value tokens exactly as printed (JSON.parse would round integers above 2^53). */
const rawValues = (line: string) => [...line.matchAll(/"value":(-?[\d.eE+-]+|"[^"]*")/g)].map((m) => m[1]);

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'herd-decode-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe('herd decode', () => {
  const folders: FixtureFolder[] = ['virt', 'notifications', 'signed'];
  for (const folder of folders) {
    it(`${folder}: prints what collectd recorded, one JSON object a line`, async () => {
      const files = fixturePackets(folder).map((p) => p.path);
      const authFile = folder === 'signed' ? join(FIXTURES_DIR, 'signed', 'auth_file') : undefined;
      const { code, lines, stderr } = await decode(files, { authFile });
      expect([code, stderr]).toEqual([0, '']);

      const expected = expectedRecords(folder);
      const values = lines.filter((l) => l.startsWith('{"kind":"values"'));
      const expectedValues = expected.filter((r): r is ExpectedValues => r.kind === 'values');
      expect(values).toHaveLength(expectedValues.length);
      values.forEach((line, i) => {
        const got = JSON.parse(line);
        const want = expectedValues[i];
        expect(Object.keys(got)).toEqual([
          'kind',
          'time',
          'host',
          'plugin',
          'plugin_instance',
          'type',
          'type_instance',
          'interval',
          'values',
        ]);
        expect([
          got.host,
          got.plugin,
          got.plugin_instance,
          got.type,
          got.type_instance,
          got.interval,
        ]).toEqual([
          want.host,
          want.plugin,
          want.plugin_instance,
          want.type,
          want.type_instance,
          want.interval,
        ]);
        expect(Math.abs(got.time - want.time)).toBeLessThanOrEqual(1e-6);
        expect(got.values.map((v: { name: string; type: string }) => [v.name, v.type])).toEqual(
          want.dsnames.map((name, j) => [name, want.dstypes[j]]),
        );
        rawValues(line).forEach((token, j) => {
          if (want.dstypes[j] === 'gauge') expect(Number(token)).toBe(want.values[j]);
          else expect(token).toBe(want.values_str[j]);
        });
      });

      const notifications = lines
        .filter((l) => l.startsWith('{"kind":"notification"'))
        .map((l) => JSON.parse(l));
      const expectedNotifications = expected.filter(
        (r): r is ExpectedNotification => r.kind === 'notification',
      );
      const key = (n: { host: string; type: string; message: string; time: number }) =>
        `${n.host}/${n.type}/${n.message}/${n.time.toFixed(5)}`;
      expect(notifications.map((n) => `${key(n)}/${n.severity}`).sort()).toEqual(
        expectedNotifications.map((n) => `${key(n)}/${n.severity_name}`).sort(),
      );
      expect(lines).toHaveLength(values.length + notifications.length);
    });
  }

  it('prints 64-bit integers exactly', async () => {
    const { lines } = await decode(fixturePackets('virt').map((p) => p.path));
    const cpuTotal = lines.find((l) => l.includes('"type":"virt_cpu_total"'));
    expect(rawValues(cpuTotal ?? '')[0]).toMatch(/^\d{19}$/);
  });

  it('names the file and the reason of a failure, decodes the rest, and exits with 1', async () => {
    const [good] = fixturePackets('plain');
    const truncated = join(scratch, 'truncated.bin');
    await writeFile(truncated, good.bytes.subarray(0, 200));
    const missing = join(scratch, 'missing.bin');
    const { code, lines, stderr } = await decode([truncated, good.path, missing]);
    expect(code).toBe(1);
    expect(stderr).toContain(`${truncated}: malformed packet: `);
    expect(stderr).toContain(`${missing}: cannot read: ENOENT`);
    expect(lines.length).toBeGreaterThan(27);
  });

  it('reports a wrong password as an authentication failure and prints nothing of the packet', async () => {
    const auth = join(scratch, 'wrong_auth');
    await writeFile(auth, 'alice: wrong\n');
    const [signed] = fixturePackets('signed');
    const { code, lines, stderr } = await decode([signed.path], { authFile: auth });
    expect([code, lines]).toEqual([1, []]);
    expect(stderr).toBe(
      `${signed.path}: authentication failed: signature of user "alice" does not match (wrong password?)\n`,
    );
  });

  it('reports data left out by the security level', async () => {
    const authFile = join(FIXTURES_DIR, 'signed', 'auth_file');
    const [signed] = fixturePackets('signed');
    const { code, lines, stderr } = await decode([signed.path], { authFile, securityLevel: 'encrypt' });
    expect([code, lines]).toEqual([1, []]);
    expect(stderr).toMatch(/parts ignored: not signed or encrypted as security level encrypt requires/);
  });

  it('reports value lists whose type is not in types.db, naming host, plugin and type', async () => {
    const emptyTypes = join(scratch, 'empty.db');
    await writeFile(emptyTypes, '# nothing\n');
    const [packet] = fixturePackets('notifications').slice(-1);
    const { code, stderr } = await decode([packet.path], { baseTypesDb: emptyTypes });
    expect(code).toBe(1);
    expect(stderr).toContain(
      'value list of host "notif-host", plugin "load", type "load": type not in types.db',
    );
  });

  it("without collectd installed, decodes with herd's own copy of types.db (and --types-db files)", async () => {
    const [packet] = fixturePackets('notifications').slice(-1);
    for (const typesDb of [[], [FIXTURE_TYPES_DB]]) {
      const { code, lines, stderr } = await decode([packet.path], {
        baseTypesDb: join(scratch, 'no-collectd-here.db'),
        typesDb,
      });
      expect(code).toBe(0);
      expect(stderr).toMatch(/not found; using herd's own copy of collectd's types.db/);
      expect(lines.join('\n')).toContain('"type":"load"');
    }
  });

  it("herd's own types.db is collectd's", async () => {
    const ours = await loadTypesDb([BUNDLED_TYPES_DB]);
    const collectds = await loadTypesDb([FIXTURE_TYPES_DB]);
    for (const type of ['load', 'cpu', 'if_octets', 'memory', 'virt_cpu_total', 'disk_octets']) {
      expect(ours.get(type), type).toEqual(collectds.get(type));
    }
  });
});
