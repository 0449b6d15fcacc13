import { afterAll, beforeAll, expect, test } from 'vitest';
import { capturingLogger } from '../../lib/testing/capture-log.js';
import { createTestDatabase } from '../../lib/testing/db.js';
import { createPool } from '../../lib/testing/users.js';
import type { DatabaseHandle } from '../../schema/db.js';
import { normaliseStoredHostUris } from './stored-uris.js';

let database: DatabaseHandle;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database.close();
});

test('hosts stored before the rule: normal form where it is unique, said at warn otherwise, idempotent', async () => {
  const db = database.db;
  const rack = await createPool(db, { name: 'rack-old' });
  const stored = [
    'test:////srv/hosts//a.xml',
    'qemu+tcp://HV1:16509/system',
    'qemu+ssh://root@hv2/system',
    'QEMU+SSH://root@hv2:22//system',
    `qemu+ext:///system?command=/tmp/x.sh`,
    'qemu+tls://hv3/system',
  ];
  for (const [i, uri] of stored.entries()) {
    await db
      .insertInto('hosts')
      .values({ pool_id: rack, uri, hostname: `old-${i}`, cpus: 1, memory_mib: 1024 })
      .execute();
  }
  const { log, lines } = capturingLogger();
  expect(await normaliseStoredHostUris(db, log)).toEqual({ normalised: 2, refused: 1, duplicates: 1 });
  const uris = (await db.selectFrom('hosts').select(['hostname', 'uri']).orderBy('id').execute()).map(
    (r) => r.uri,
  );
  expect(uris).toEqual([
    'test:///srv/hosts/a.xml',
    'qemu+tcp://hv1/system',
    'qemu+ssh://root@hv2/system',
    'QEMU+SSH://root@hv2:22//system',
    'qemu+ext:///system?command=/tmp/x.sh',
    'qemu+tls://hv3/system',
  ]);
  const warned = lines.map((l) => JSON.parse(l)).filter((l) => l.level === 40);
  expect(warned.map((l) => l.hostname).sort()).toEqual(['old-3', 'old-4']);
  expect(await normaliseStoredHostUris(db, log)).toEqual({ normalised: 0, refused: 1, duplicates: 1 });
});
