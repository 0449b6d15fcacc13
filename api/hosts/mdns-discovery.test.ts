import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Bonjour } from 'bonjour-service';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { DatabaseHandle } from '../../lib/db.js';
import { createLogger } from '../../lib/log.js';
import { createTestDatabase } from '../../lib/testing/db.js';
import { writeTestHost } from '../../lib/testing/libvirt-hosts.js';
import { waitFor } from '../../lib/testing/wait.js';
import { HostConnections } from './driver/index.js';
import { discoveredUri, MdnsDiscovery } from './mdns-discovery.js';

/**
 * Real mDNS (bonjour-service) kept on loopback: one instance in unicast mode on 127.0.0.1 both announces and
 * browses, so no packet leaves the machine.
 */
const log = createLogger('silent');
let database: DatabaseHandle;
let dir: string;
let bonjour: Bonjour;
const connections = new HostConnections(log);

beforeAll(async () => {
  database = await createTestDatabase();
  dir = await mkdtemp(path.join(tmpdir(), 'herd-mdns-'));
  const port = 20000 + Math.floor(Math.random() * 20000);
  bonjour = new Bonjour({
    multicast: false,
    ip: '127.0.0.1',
    port,
    interface: '127.0.0.1',
    bind: '127.0.0.1',
  } as never);
});
afterAll(async () => {
  bonjour.destroy();
  await connections.closeAll();
  await database.close();
  await rm(dir, { recursive: true, force: true });
});

test('an announced host is added disabled to the default pool, with its inventory', async () => {
  const uri = await writeTestHost(dir, { name: 'announced', cpus: 6, memoryMiB: 12288 });
  const discovery = new MdnsDiscovery({ db: database.db, connections, log, bonjour });
  discovery.start();
  try {
    bonjour.publish({
      name: 'announced',
      type: 'herd',
      port: 9,
      txt: { uri },
      probe: false,
      disableIPv6: true,
    });
    // Announced without a URI: ignored.
    bonjour.publish({ name: 'mute', type: 'herd', port: 9, probe: false, disableIPv6: true });
    await waitFor(async () => {
      await discovery.settled();
      return (
        (await database.db.selectFrom('hosts').select('id').where('uri', '=', uri).executeTakeFirst()) !==
        undefined
      );
    }, 10_000);
    const host = await database.db
      .selectFrom('hosts')
      .selectAll()
      .where('uri', '=', uri)
      .executeTakeFirstOrThrow();
    expect(host).toMatchObject({
      hostname: 'announced',
      cpus: 6,
      memory_mib: 12288,
      enabled: false,
      pool_id: 1,
    });
    expect(await database.db.selectFrom('hosts').select('id').execute()).toHaveLength(1);
  } finally {
    await discovery.stop();
  }
});

test('URIs from announcements', () => {
  expect(discoveredUri({ type: 'libvirt', host: 'hv1.local', port: 16509, addresses: ['192.0.2.7'] })).toBe(
    'qemu+tcp://192.0.2.7:16509/system',
  );
  expect(discoveredUri({ type: 'libvirt', host: 'hv1.local', port: 16514, addresses: [] })).toBe(
    'qemu+tls://hv1.local/system',
  );
  expect(discoveredUri({ type: 'herd', host: 'x', port: 1, txt: { uri: 'qemu+ssh://root@x/system' } })).toBe(
    'qemu+ssh://root@x/system',
  );
  expect(discoveredUri({ type: 'herd', host: 'x', port: 1, txt: { uri: '; rm -rf /' } })).toBeUndefined();
});
