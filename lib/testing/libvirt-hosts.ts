import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { HostDriver } from '../../api/hosts/driver/host-driver.js';
import type { RpcDriver } from '../../api/hosts/driver/rpc-driver.js';

export interface TestDomain {
  name: string;
  /** Defaults to a UUID derived from the host and domain names. */
  uuid?: string;
  vcpus?: number;
  memoryMiB?: number;
  /** Defaults to running (what the test driver does with a domain in its file). */
  state?: 'running' | 'paused' | 'shutoff';
  macs?: string[];
}

/** The test driver gives every pool 100 GiB whatever the file says; volumes here are sparse (nothing allocated). */
export interface TestPool {
  name: string;
  volumes?: Array<{ name: string; sizeGiB: number }>;
}

export interface TestHostOptions {
  /** Also the host's hostname in herd (the driver names test hosts after their file). */
  name: string;
  cpus: number;
  memoryMiB: number;
  mhz?: number;
  domains?: TestDomain[];
  /** Defaults to one `dir` pool named `default` holding disk1.img (10 GiB) and disk2.img (20 GiB). */
  pools?: TestPool[];
  /** Physical NICs; defaults to one, eth0. */
  nics?: Array<{ name: string; mac: string }>;
}

const RUNSTATE = { running: 1, paused: 3, shutoff: 5 } as const;

/** A stable UUID from a string, so fixtures and assertions agree without passing UUIDs around. */
export function testUuid(seed: string): string {
  const h = createHash('sha256').update(seed).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/**
 * Writes a libvirt test-driver host (`<node>` file: CPUs, memory, domains, storage pools with volumes,
 * NICs) as `<dir>/<name>.xml` and answers its URI, `test:///<dir>/<name>.xml`. Each URI is one independent
 * fake host per connection: open it only through herd's HostConnections.
 */
export async function writeTestHost(dir: string, options: TestHostOptions): Promise<string> {
  const file = path.resolve(dir, `${options.name}.xml`);
  const storageRoot = path.resolve(dir, options.name);
  await mkdir(storageRoot, { recursive: true });
  const pools = options.pools ?? [
    {
      name: 'default',
      volumes: [
        { name: 'disk1.img', sizeGiB: 10 },
        { name: 'disk2.img', sizeGiB: 20 },
      ],
    },
  ];
  const nics = options.nics ?? [{ name: 'eth0', mac: testMac(`${options.name}/eth0`) }];
  const xml = [
    `<node xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>`,
    '  <cpu>',
    `    <nodes>1</nodes><sockets>1</sockets><cores>${options.cpus}</cores><threads>1</threads>`,
    `    <active>${options.cpus}</active><mhz>${options.mhz ?? 2400}</mhz><model>x86_64</model>`,
    '  </cpu>',
    `  <memory>${options.memoryMiB * 1024}</memory>`,
    `  <network><name>default</name><uuid>${testUuid(`${options.name}/net`)}</uuid><bridge name='virbr0'/><forward/><ip address='192.168.122.1' netmask='255.255.255.0'/></network>`,
    ...(options.domains ?? []).map((d) => domainXml(options.name, d)),
    ...pools.map((p) => poolXml(options.name, storageRoot, p)),
    ...nics.map(
      (n) =>
        `  <interface type='ethernet' name='${esc(n.name)}'><start mode='onboot'/><mac address='${n.mac}'/></interface>`,
    ),
    '</node>',
    '',
  ].join('\n');
  await writeFile(file, xml);
  return `test://${file}`;
}

/** A locally administered MAC from a string. */
export function testMac(seed: string): string {
  const h = createHash('sha256').update(seed).digest('hex');
  return `52:54:00:${h.slice(0, 2)}:${h.slice(2, 4)}:${h.slice(4, 6)}`;
}

function domainXml(host: string, d: TestDomain): string {
  const uuid = d.uuid ?? testUuid(`${host}/${d.name}`);
  const memKiB = (d.memoryMiB ?? 512) * 1024;
  const macs = d.macs ?? [testMac(`${host}/${d.name}`)];
  return [
    "  <domain type='test'>",
    `    <name>${esc(d.name)}</name><uuid>${uuid}</uuid>`,
    `    <memory>${memKiB}</memory><currentMemory>${memKiB}</currentMemory><vcpu>${d.vcpus ?? 1}</vcpu>`,
    "    <os><type>hvm</type><boot dev='hd'/></os>",
    '    <devices>',
    ...macs.map(
      (mac) =>
        `      <interface type='network'><mac address='${mac}'/><source network='default'/></interface>`,
    ),
    '    </devices>',
    `    <test:runstate>${RUNSTATE[d.state ?? 'running']}</test:runstate>`,
    '  </domain>',
  ].join('\n');
}

function poolXml(host: string, root: string, p: TestPool): string {
  const target = path.join(root, p.name);
  return [
    "  <pool type='dir'>",
    `    <name>${esc(p.name)}</name><uuid>${testUuid(`${host}/pool/${p.name}`)}</uuid>`,
    `    <target><path>${esc(target)}</path></target>`,
    ...(p.volumes ?? []).map(
      (v) =>
        `    <volume type='file'><name>${esc(v.name)}</name><capacity unit='bytes'>${bytes(v.sizeGiB)}</capacity><allocation unit='bytes'>0</allocation><target><path>${esc(path.join(target, v.name))}</path></target></volume>`,
    ),
    '  </pool>',
  ].join('\n');
}

/** libvirt wants whole numbers: sizes go in bytes so fractional GiB (a 0.5 GiB ISO) work. */
function bytes(gib: number): number {
  return Math.round(gib * 1024 ** 3);
}

function esc(s: string): string {
  return s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll("'", '&apos;');
}

/**
 * Cuts a host driver's connection (closes its current client) and resolves once it has reconnected on its own,
 * on a new client; throws if it was not connected.
 */
export async function cutConnection(driver: HostDriver): Promise<void> {
  const { connection } = driver as RpcDriver;
  const before = connection.current;
  if (!before) throw new Error(`${driver.uri}: not connected`);
  const reconnected = new Promise<void>((resolve) => connection.once('reconnected', () => resolve()));
  await before.close();
  await reconnected;
  if (connection.current === before || !connection.current)
    throw new Error(`${driver.uri}: did not reconnect`);
}
