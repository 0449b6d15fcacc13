import { type ChildProcess, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../lib/testing/wait.js';
import type { ValueList } from '../types.js';
import { type EncoderSecurity, PacketEncoder } from './encoder.js';

/**
 * The real collectd daemon (Debian's collectd-core) as the receiver of the encoder's packets: signed and
 * encrypted ones are accepted with the right password and refused with a wrong one, and collectd's csv
 * writer stores the values exactly, 64-bit integers included.
 */

let dir: string;
let collectd: ChildProcess;
let signPort: number;
let encryptPort: number;
const socket = dgram.createSocket('udp4');

async function freeUdpPort(): Promise<number> {
  const probe = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => probe.bind(0, '127.0.0.1', resolve));
  const { port } = probe.address();
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'herd-encoder-collectd-'));
  [signPort, encryptPort] = [await freeUdpPort(), await freeUdpPort()];
  await writeFile(join(dir, 'auth'), 'alice: s3cret\n');
  const conf = join(dir, 'collectd.conf');
  await writeFile(
    conf,
    `Hostname "receiver"
FQDNLookup false
BaseDir "${dir}"
PIDFile "${dir}/collectd.pid"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
Interval 1
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File "${dir}/collectd.log"
</Plugin>
LoadPlugin csv
<Plugin csv>
  DataDir "${dir}/csv"
  StoreRates false
</Plugin>
LoadPlugin network
<Plugin network>
  <Listen "127.0.0.1" "${signPort}">
    SecurityLevel Sign
    AuthFile "${dir}/auth"
  </Listen>
  <Listen "127.0.0.1" "${encryptPort}">
    SecurityLevel Encrypt
    AuthFile "${dir}/auth"
  </Listen>
</Plugin>
`,
  );
  collectd = spawn('collectd', ['-f', '-C', conf], { stdio: 'ignore' });
});

afterAll(async () => {
  collectd?.kill('SIGKILL');
  socket.close();
  await rm(dir, { recursive: true, force: true });
});

function packetsFor(host: string, security: EncoderSecurity): Buffer[] {
  const packets: Buffer[] = [];
  const encoder = new PacketEncoder({ onPacket: (p) => packets.push(p), security });
  const time = Math.floor(Date.now() / 1000);
  const vl = (type: string, dsTypes: ValueList['dsTypes'], values: ValueList['values']): ValueList => ({
    host,
    plugin: 'enc',
    pluginInstance: 'x',
    type,
    typeInstance: '',
    time,
    interval: 1,
    dsTypes,
    values,
  });
  encoder.addValues(vl('load', ['gauge', 'gauge', 'gauge'], [0.5, 0.25, 0.125]));
  encoder.addValues(vl('counter', ['counter'], [2n ** 63n + 5n]));
  encoder.addValues(vl('derive', ['derive'], [-(2n ** 62n)]));
  encoder.addValues(vl('absolute', ['absolute'], [12345]));
  encoder.flush();
  return packets;
}

const send = (packet: Buffer, port: number) =>
  new Promise<void>((resolve, reject) =>
    socket.send(packet, port, '127.0.0.1', (err) => (err ? reject(err) : resolve())),
  );

async function csvLastRow(host: string, type: string): Promise<string | undefined> {
  const folder = join(dir, 'csv', host, 'enc-x');
  const file = (await readdir(folder).catch(() => [])).find((name) => name.startsWith(`${type}-`));
  if (file === undefined) return undefined;
  const rows = (await readFile(join(folder, file), 'utf8')).trim().split('\n');
  return rows.length > 1 ? rows[rows.length - 1].split(',').slice(1).join(',') : undefined;
}

describe('collectd receiving the encoder’s packets', () => {
  for (const level of ['sign', 'encrypt'] as const) {
    it(`accepts ${level}ed packets with the right password, refuses a wrong one`, async () => {
      const port = level === 'sign' ? signPort : encryptPort;
      const good = packetsFor(`good-${level}`, { level, username: 'alice', password: 's3cret' });
      const bad = packetsFor(`bad-${level}`, { level, username: 'alice', password: 'wrong' });
      // collectd needs a moment to listen: send until the values show up.
      await waitFor(
        async () => {
          for (const packet of [...bad, ...good]) await send(packet, port);
          return (await csvLastRow(`good-${level}`, 'absolute')) !== undefined;
        },
        20_000,
        300,
      );

      expect(await csvLastRow(`good-${level}`, 'load')).toBe('0.500000,0.250000,0.125000');
      expect(await csvLastRow(`good-${level}`, 'counter')).toBe('9223372036854775813');
      expect(await csvLastRow(`good-${level}`, 'derive')).toBe('-4611686018427387904');
      expect(await csvLastRow(`good-${level}`, 'absolute')).toBe('12345');
      expect(await readdir(join(dir, 'csv'))).not.toContain(`bad-${level}`);
      const refusal =
        level === 'sign' ? /Hash mismatch\. Username: alice/ : /Checksum mismatch\. Username: alice/;
      await waitFor(async () => refusal.test(await readFile(join(dir, 'collectd.log'), 'utf8')), 5_000);
    });
  }
});
