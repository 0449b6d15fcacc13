import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { capturingLogger } from '../../lib/testing/capture-log.js';
import { createTestDatabase } from '../../lib/testing/db.js';
import { createPool } from '../../lib/testing/users.js';
import { checkSaveDir, isLocalHostUri } from './save-dir.js';

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let dir: string;
beforeAll(async () => {
  database = await createTestDatabase();
  dir = await mkdtemp(path.join(tmpdir(), 'herd-save-dir-'));
});
afterAll(async () => {
  await database.close();
  await rm(dir, { recursive: true, force: true });
});

test('local libvirt URIs are told from remote ones', () => {
  for (const uri of ['test:///default', 'test:///tmp/hosts.xml', 'qemu:///system', 'qemu+unix:///session'])
    expect(isLocalHostUri(uri), uri).toBe(true);
  for (const uri of ['qemu+ssh://root@hv1/system', 'qemu+tls://hv2.example/system', 'not a uri'])
    expect(isLocalHostUri(uri), uri).toBe(false);
});

test('at start, a missing save directory is reported when this machine has hosts, and only then', async () => {
  const db = database.db;
  const missing = path.join(dir, 'nowhere');
  const warnings = async (saveDir: string) => {
    const { log, lines } = capturingLogger();
    await checkSaveDir(db, saveDir, log);
    return lines.map((l) => JSON.parse(l)).filter((e) => e.level === 40);
  };
  const rack = await createPool(db, { name: 'rack' });
  await db
    .insertInto('hosts')
    .values({ pool_id: rack, uri: 'qemu+ssh://root@far/system', hostname: 'far', cpus: 4, memory_mib: 4096 })
    .execute();
  expect(await warnings(missing)).toEqual([]);
  await db
    .insertInto('hosts')
    .values({ pool_id: rack, uri: 'test:///default', hostname: 'near', cpus: 4, memory_mib: 4096 })
    .execute();
  const [warning, ...more] = await warnings(missing);
  expect(more).toEqual([]);
  expect(warning).toMatchObject({ saveDir: missing, hosts: ['near'], localHosts: 1 });
  expect(warning.msg).toContain(
    `the save directory ${missing} (HERD_SAVE_DIR) does not exist on this machine`,
  );
  expect(await warnings(dir)).toEqual([]);
});
