import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Bonjour } from 'bonjour-service';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createLogger } from '../../lib/log.js';
import { capturingLogger } from '../../lib/testing/capture-log.js';
import { createTestDatabase } from '../../lib/testing/db.js';
import { sharedHypervisor } from '../../lib/testing/hypervisor.js';
import { writeTestHost } from '../../lib/testing/libvirt-hosts.js';
import { forwardTcpToUnix } from '../../lib/testing/tcp-forward.js';
import { waitFor } from '../../lib/testing/wait.js';
import type { DatabaseHandle } from '../../schema/db.js';
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

test('an announced network host is added disabled to the default pool; local and program URIs are refused', async () => {
  // The suite's real libvirtd, reached over TCP on loopback as a network host would be.
  const forward = await forwardTcpToUnix(sharedHypervisor().hosts[0].socket);
  const uri = `qemu+tcp://127.0.0.1:${forward.port}/system`;
  const file = await writeTestHost(dir, { name: 'announced', cpus: 6, memoryMiB: 12288 });
  const marker = path.join(dir, 'ran');
  const script = path.join(dir, 'payload.sh');
  await writeFile(script, `#!/bin/sh\ntouch '${marker}'\n`);
  await chmod(script, 0o755);
  const captured = capturingLogger();
  const discovery = new MdnsDiscovery({ db: database.db, connections, log: captured.log, bonjour });
  discovery.start();
  const publish = (name: string, txt?: { uri: string }) =>
    bonjour.publish({ name, type: 'herd', port: 9, ...(txt && { txt }), probe: false, disableIPv6: true });
  try {
    publish('announced', { uri: `QEMU+TCP://127.0.0.1:${forward.port}//system` });
    // Announced without a URI: ignored.
    publish('mute');
    // Anyone on the network can announce: a local file, a program to run.
    publish('local-file', { uri: file });
    publish('program', { uri: `qemu+ext:///system?command=${script}` });
    publish('ssh-program', { uri: `qemu+ssh://127.0.0.1/system?command=${script}` });
    const refused = () =>
      captured.lines
        .map((l) => JSON.parse(l))
        .filter((l) => l.msg === 'announced host URI refused')
        .map((l) => l.name);
    await waitFor(async () => {
      await discovery.settled();
      const added = await database.db
        .selectFrom('hosts')
        .select('id')
        .where('uri', '=', uri)
        .executeTakeFirst();
      return added !== undefined && refused().length === 3;
    }, 10_000);
    expect(refused().sort()).toEqual(['local-file', 'program', 'ssh-program']);
    const host = await database.db
      .selectFrom('hosts')
      .selectAll()
      .where('uri', '=', uri)
      .executeTakeFirstOrThrow();
    expect(host).toMatchObject({ enabled: false, pool_id: 1 });
    expect(host.cpus).toBeGreaterThan(0);
    expect(await database.db.selectFrom('hosts').select('id').execute()).toHaveLength(1);
    expect(await readFile(marker).catch(() => 'absent')).toBe('absent');
  } finally {
    await discovery.stop();
    await connections.drop(uri);
    await forward.close();
  }
});

test('URIs from announcements', () => {
  expect(discoveredUri({ type: 'libvirt', host: 'hv1.local', port: 16509, addresses: ['192.0.2.7'] })).toBe(
    'qemu+tcp://192.0.2.7/system',
  );
  expect(discoveredUri({ type: 'libvirt', host: 'hv1.local', port: 16514, addresses: [] })).toBe(
    'qemu+tls://hv1.local/system',
  );
  expect(discoveredUri({ type: 'herd', host: 'x', port: 1, txt: { uri: 'qemu+ssh://root@x/system' } })).toBe(
    'qemu+ssh://root@x/system',
  );
  expect(discoveredUri({ type: 'herd', host: 'x', port: 1, txt: { uri: '; rm -rf /' } })).toBeUndefined();
  expect(discoveredUri({ type: 'libvirt', host: 'hv1.local', port: 16510, addresses: ['192.0.2.7'] })).toBe(
    'qemu+tcp://192.0.2.7:16510/system',
  );
  expect(
    discoveredUri({ type: 'libvirt', host: '-oProxyCommand=x', port: 16514, addresses: [] }),
  ).toBeUndefined();
  for (const uri of [
    'test:///default',
    'test:///tmp/x.xml',
    'qemu:///system',
    'qemu+unix:///system?socket=/run/libvirt/libvirt-sock',
    'qemu+ext:///system?command=/tmp/x',
    'qemu+ssh://x/system?%63ommand=/tmp/x',
    'qemu+ssh://x/system?netcat=/tmp/x',
    'qemu+ssh://x/system?keyfile=/root/.ssh/id_rsa',
    'qemu+tls://x/system?no_verify=1',
  ]) {
    expect(discoveredUri({ type: 'herd', host: 'x', port: 1, txt: { uri } }), uri).toBeUndefined();
  }
});
