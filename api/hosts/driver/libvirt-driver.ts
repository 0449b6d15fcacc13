import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { type Domain, Hypervisor } from '@unraid/libvirt';
import type { Logger } from '../../../lib/log.js';
import { parseHostUri } from '../host-uri.js';
import { CPU_PERIOD_US, cpuQuotaUs, domainStateFromLibvirt, domainXml, parseXml } from './domain-xml.js';
import {
  type DomainInfo,
  type DomainJobInfo,
  type DomainSpec,
  type HostDriver,
  type HostInventory,
  type StoragePoolDefinition,
  type StoragePoolInfo,
  type StorageVolumeInfo,
  UnsupportedByDriverError,
  type VirtSupport,
} from './host-driver.js';
import { VirshShell } from './virsh-shell.js';
import { chooseVirtType, virtSupportFromCapabilities } from './virt-type.js';

const KiB_PER_MiB = 1024;
const GiB = 1024 ** 3;
const MIGRATION_TIMEOUT_MS = 6 * 60 * 60 * 1000;

const run = promisify(execFile);

/**
 * A libvirt host: domains through the `@unraid/libvirt` binding (one connection), storage and the rest
 * through one persistent virsh shell (one more connection). Both live as long as the driver: with the test
 * driver every connection is its own fake host, so neither may be reopened behind the caller's back.
 */
export class LibvirtDriver implements HostDriver {
  private readonly shell: VirshShell;
  private readonly isTestDriver: boolean;
  /** What the host's capabilities offer (domain types, the CPU's vmx/svm): read once. */
  private virtSupport?: Promise<VirtSupport>;

  private constructor(
    readonly uri: string,
    private readonly hypervisor: Hypervisor,
    private readonly log: Logger,
  ) {
    this.shell = new VirshShell(uri, log);
    this.isTestDriver = uri.startsWith('test:');
  }

  static async open(uri: string, log: Logger): Promise<LibvirtDriver> {
    // The last gate before libvirt: a URI no one may add (docs/host-uris.md) is never opened, even one
    // stored before the rule existed.
    parseHostUri(uri);
    const hypervisor = new Hypervisor({ uri });
    try {
      await hypervisor.connectOpen();
    } catch (err) {
      throw new Error(`cannot connect to ${uri}: ${libvirtMessage(err)}`);
    }
    return new LibvirtDriver(uri, hypervisor, log.child({ host: uri }));
  }

  async inventory(): Promise<HostInventory> {
    const node = await this.call(() => this.hypervisor.nodeGetInfo());
    const [hostname, caps, nics] = await Promise.all([this.hostname(), this.capabilities(), this.nics()]);
    return {
      hostname,
      uuid: caps?.uuid ?? null,
      // nodeinfo's "CPU model" is the architecture (x86_64, aarch64) on every hypervisor driver.
      arch: node.model || null,
      cpus: node.cpus,
      cores: node.nodes * node.sockets * node.cores || null,
      mhz: node.mhz || null,
      memoryMiB: Math.floor(node.memory / KiB_PER_MiB),
      nics,
      ...(caps ? { virt: caps.virt } : {}),
    };
  }

  async ping(): Promise<void> {
    await this.call(() => this.hypervisor.connectGetHostname());
  }

  async listDomains(): Promise<DomainInfo[]> {
    const domains = await this.call(() => this.hypervisor.connectListAllDomains());
    const infos = await Promise.all(
      domains.map((d) =>
        // A domain undefined between the listing and the lookup is simply gone.
        this.describe(d).catch((err) => {
          if (isNoDomain(err)) return null;
          throw err;
        }),
      ),
    );
    return infos.filter((d): d is DomainInfo => d !== null);
  }

  async domain(uuid: string): Promise<DomainInfo | null> {
    const d = await this.lookup(uuid, { optional: true });
    return d ? this.describe(d) : null;
  }

  async define(spec: DomainSpec): Promise<void> {
    this.virtSupport ??= this.shell.run(['capabilities']).then(virtSupportFromCapabilities);
    this.virtSupport.catch(() => {
      this.virtSupport = undefined;
    });
    const choice = chooseVirtType(await this.virtSupport, spec.virtType ?? 'auto');
    if (!choice.type) throw new Error(`virtType: ${this.uri}: ${choice.reason}`);
    const xml = domainXml(spec, choice.type);
    await this.call(() => this.hypervisor.domainDefineXML(xml));
  }

  async undefine(uuid: string): Promise<void> {
    const d = await this.lookup(uuid);
    await this.call(() => this.hypervisor.domainUndefine(d));
  }

  async start(uuid: string): Promise<void> {
    const d = await this.lookup(uuid);
    await this.call(() => this.hypervisor.domainCreate(d));
  }

  async shutdown(uuid: string): Promise<void> {
    const d = await this.lookup(uuid);
    await this.call(() => this.hypervisor.domainShutdown(d));
  }

  async destroy(uuid: string): Promise<void> {
    const d = await this.lookup(uuid);
    await this.call(() => this.hypervisor.domainDestroy(d));
  }

  async suspend(uuid: string): Promise<void> {
    const d = await this.lookup(uuid);
    await this.call(() => this.hypervisor.domainSuspend(d));
  }

  async resume(uuid: string): Promise<void> {
    const d = await this.lookup(uuid);
    await this.call(() => this.hypervisor.domainResume(d));
  }

  async save(uuid: string, file: string): Promise<void> {
    const d = await this.lookup(uuid);
    await this.call(() => this.hypervisor.domainSave(d, file));
  }

  async restore(file: string): Promise<void> {
    await this.call(() => this.hypervisor.domainRestore(file));
  }

  async migrateLive(uuid: string, destinationUri: string): Promise<void> {
    if (this.isTestDriver) {
      throw new UnsupportedByDriverError(
        "live migration not supported by this host's driver (test); use cold migration",
      );
    }
    // The source libvirtd opens the destination URI (peer to peer): the same gate as for opening one.
    parseHostUri(destinationUri);
    // Its own virsh process: a migration can take minutes and must not hold up the host's storage shell.
    // With a real hypervisor the state lives in libvirtd, so a second connection sees the same host.
    try {
      await run(
        'virsh',
        [
          '-c',
          this.uri,
          'migrate',
          '--live',
          '--p2p',
          '--persistent',
          '--undefinesource',
          ...sameMachineMigrationArgs(destinationUri),
          uuid,
          destinationUri,
        ],
        { timeout: MIGRATION_TIMEOUT_MS, env: { ...process.env, LC_ALL: 'C' } },
      );
    } catch (err) {
      const stderr = String((err as { stderr?: string }).stderr ?? '');
      const reason = stderr
        .split('\n')
        .filter((l) => l.startsWith('error: '))
        .map((l) => l.slice(7))
        .join(': ');
      throw new Error(
        `live migration of ${uuid} to ${destinationUri} failed: ${reason || (err as Error).message}`,
      );
    }
  }

  async jobInfo(uuid: string): Promise<DomainJobInfo | null> {
    if (this.isTestDriver) return null;
    const output = await this.shell
      .run(['domjobinfo', uuid, '--rawstats'], { timeoutMs: 10_000 })
      .catch((err) => {
        this.log.debug({ err, uuid }, 'domjobinfo failed');
        return '';
      });
    return parseJobInfo(output);
  }

  async setCpuLimit(uuid: string, limitPercent: number | null): Promise<void> {
    if (this.isTestDriver) return;
    const d = await this.lookup(uuid);
    const { state } = await this.describe(d);
    const running = state === 'running' || state === 'paused';
    // -1: no quota (the cgroup's cpu.cfs_quota_us = -1).
    const quota = limitPercent === null ? -1 : cpuQuotaUs(limitPercent);
    await this.shell.run([
      'schedinfo',
      uuid,
      ...(running ? ['--live'] : []),
      '--config',
      '--set',
      `vcpu_period=${CPU_PERIOD_US}`,
      '--set',
      `vcpu_quota=${quota}`,
    ]);
  }

  /** Not through this driver (it goes with issue 24): herd's RPC driver sets network and disk limits. */
  async setIoLimits(): Promise<void> {
    if (this.isTestDriver) return;
    throw new UnsupportedByDriverError('network and disk limits need the RPC host driver');
  }

  async domainXml(uuid: string): Promise<string> {
    const d = await this.lookup(uuid);
    return this.call(() => this.hypervisor.domainGetXMLDesc(d));
  }

  async listStoragePools(): Promise<StoragePoolInfo[]> {
    const all = names(await this.shell.run(['pool-list', '--all', '--name']));
    const active = new Set(names(await this.shell.run(['pool-list', '--name'])));
    const pools: StoragePoolInfo[] = [];
    for (const name of all) {
      const pool = parseXml(await this.shell.run(['pool-dumpxml', name])).pool ?? {};
      pools.push({
        name,
        type: String(pool['@type'] ?? 'unknown'),
        capacityGiB: bytes(pool.capacity) / GiB,
        availableGiB: bytes(pool.available) / GiB,
        active: active.has(name),
      });
    }
    return pools;
  }

  async defineStoragePool(definition: StoragePoolDefinition): Promise<void> {
    // pool-define-as cannot set an iSCSI portal's port; a full XML document can express every type.
    const dir = await mkdtemp(path.join(tmpdir(), 'herd-pool-'));
    try {
      const file = path.join(dir, 'pool.xml');
      await writeFile(file, storagePoolXml(definition));
      await this.shell.run(['pool-define', file]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    // netfs needs its mount point made; an LVM group or an iSCSI target already exists and must not be
    // "built" (that would format the group's physical volumes).
    if (definition.type === 'nfs') await this.shell.run(['pool-build', definition.name]);
    await this.shell.run(['pool-autostart', definition.name]);
    await this.shell.run(['pool-start', definition.name], { timeoutMs: 120_000 });
  }

  async refreshStoragePool(pool: string): Promise<void> {
    const active = new Set(names(await this.shell.run(['pool-list', '--name'])));
    if (!active.has(pool)) await this.shell.run(['pool-start', pool], { timeoutMs: 120_000 });
    await this.shell.run(['pool-refresh', pool], { timeoutMs: 120_000 });
  }

  async listVolumes(pool: string): Promise<StorageVolumeInfo[]> {
    const listing = await this.shell.run(['vol-list', '--pool', pool]);
    const volumes: StorageVolumeInfo[] = [];
    for (const line of listing.split('\n')) {
      // Rows are "name   path", padded with at least three spaces.
      const name = line.trim().split(/\s{3,}/)[0];
      if (name) volumes.push(await this.volume(pool, name));
    }
    return volumes;
  }

  async createVolume(pool: string, name: string, sizeGiB: number): Promise<StorageVolumeInfo> {
    await this.shell.run(['vol-create-as', '--pool', pool, name, String(Math.round(sizeGiB * GiB))], {
      timeoutMs: 600_000,
    });
    return this.volume(pool, name);
  }

  async deleteVolume(pool: string, name: string): Promise<void> {
    await this.shell.run(['vol-delete', '--pool', pool, name], { timeoutMs: 600_000 });
  }

  async close(): Promise<void> {
    await this.shell.close();
    await this.hypervisor.connectClose().catch((err) => this.log.debug({ err }, 'libvirt close failed'));
  }

  private async volume(pool: string, name: string): Promise<StorageVolumeInfo> {
    const vol = parseXml(await this.shell.run(['vol-dumpxml', '--pool', pool, name])).volume ?? {};
    return {
      name: String(vol.name ?? name),
      path: String(vol.target?.path ?? vol.key ?? ''),
      sizeGiB: bytes(vol.capacity) / GiB,
    };
  }

  private async describe(d: Domain): Promise<DomainInfo> {
    const [uuid, name, info] = await Promise.all([
      this.call(() => this.hypervisor.domainGetUUIDString(d)),
      this.call(() => this.hypervisor.domainGetName(d)),
      this.call(() => this.hypervisor.domainGetInfo(d)),
    ]);
    return {
      uuid,
      name,
      state: domainStateFromLibvirt(info.state),
      vcpus: info.nrVirtCpu,
      memoryMiB: Math.floor(info.maxMem / KiB_PER_MiB),
    };
  }

  private async lookup(uuid: string): Promise<Domain>;
  private async lookup(uuid: string, options: { optional: true }): Promise<Domain | null>;
  private async lookup(uuid: string, options?: { optional: true }): Promise<Domain | null> {
    try {
      return await this.hypervisor.domainLookupByUUIDString(uuid);
    } catch (err) {
      if (isNoDomain(err)) {
        if (options?.optional) return null;
        throw new Error(`domain ${uuid} not found on ${this.uri}`);
      }
      throw new Error(`libvirt (${this.uri}): ${libvirtMessage(err)}`);
    }
  }

  /** Binding errors carry libvirt's message and little else; give them the host's URI. */
  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new Error(`libvirt (${this.uri}): ${libvirtMessage(err)}`, { cause: err });
    }
  }

  /** The test driver answers the machine's own hostname for every fake host; the file name tells them apart. */
  private async hostname(): Promise<string> {
    if (this.isTestDriver) {
      const file = this.uri.replace(/^test:\/\//, '');
      return path.basename(file, '.xml') || 'test';
    }
    return this.call(() => this.hypervisor.connectGetHostname());
  }

  /** The host's UUID and what it offers for virtualization, from its capabilities (null when unreadable). */
  private async capabilities(): Promise<{ uuid: string | null; virt: VirtSupport } | null> {
    try {
      const xml = await this.shell.run(['capabilities']);
      const uuid = parseXml(xml).capabilities?.host?.uuid;
      const virt = virtSupportFromCapabilities(xml);
      this.virtSupport = Promise.resolve(virt);
      return { uuid: typeof uuid === 'string' && uuid.length > 0 ? uuid : null, virt };
    } catch (err) {
      this.log.debug({ err }, 'capabilities unreadable');
      return null;
    }
  }

  /** Physical interfaces as libvirt's interface backend sees them; hosts without one report none. */
  private async nics(): Promise<Array<{ name: string; mac?: string }>> {
    try {
      const listing = await this.shell.run(['iface-list', '--all']);
      return listing
        .split('\n')
        .map((line) => line.trim().split(/\s+/))
        .filter((cols) => cols[0])
        .map(([name, , mac]) =>
          mac && /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac) ? { name, mac } : { name },
        );
    } catch (err) {
      this.log.debug({ err }, 'iface-list failed');
      return [];
    }
  }
}

/** libvirt's virDomainJobOperation numbers (include/libvirt/libvirt-domain.h). */
export const JOB_OPERATIONS: Record<string, string> = {
  '1': 'start',
  '2': 'save',
  '3': 'restore',
  '4': 'incoming migration',
  '5': 'outgoing migration',
  '6': 'snapshot',
  '7': 'snapshot revert',
  '8': 'dump',
  '9': 'backup',
};

/**
 * `virsh domjobinfo --rawstats`: "Job type: N" (0: none), then libvirt's typed parameters as `name: value`.
 * Before a job has measured anything it reports a total of 0: nothing to tell yet.
 */
export function parseJobInfo(output: string): DomainJobInfo | null {
  const fields = new Map<string, string>();
  for (const line of output.split('\n')) {
    const at = line.indexOf(':');
    if (at > 0) fields.set(line.slice(0, at).trim(), line.slice(at + 1).trim());
  }
  const type = fields.get('Job type');
  if (type === undefined || type === '0' || /none/i.test(type)) return null;
  const total = Number(fields.get('data_total'));
  if (!Number.isFinite(total) || total <= 0) return null;
  return {
    operation: JOB_OPERATIONS[fields.get('operation') ?? ''] ?? 'unknown',
    dataTotalBytes: total,
    dataProcessedBytes: Number(fields.get('data_processed')) || 0,
    dataRemainingBytes: Number(fields.get('data_remaining')) || 0,
  };
}

/**
 * How a live migration reaches a destination on this same machine (a URI without a host, or a loopback host):
 * libvirt would send the guest's memory to the destination's hostname and refuses 127.0.0.1 as qemu.conf's
 * `migration_address`, so the destination is told to listen on loopback and the source to connect there (a port
 * from the destination's `migration_port_min…max`). The disks are then the same files on the same filesystem
 * whatever libvirt can tell of the storage, so its refusal of storage it does not know to be shared (a plain
 * directory) does not apply: `--unsafe`. Any other destination: libvirt's defaults (its hostname, and shared
 * storage libvirt recognises: NFS, iSCSI, …).
 */
export function sameMachineMigrationArgs(destinationUri: string): string[] {
  let host: string;
  try {
    host = new URL(destinationUri).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return [];
  }
  const loopback = host === '' || host === 'localhost' || host === '::1' || /^127\./.test(host);
  return loopback ? ['--migrateuri', 'tcp://127.0.0.1', '--listen-address', '127.0.0.1', '--unsafe'] : [];
}

function names(listing: string): string[] {
  return listing
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

function bytes(node: unknown): number {
  const value = typeof node === 'object' && node !== null ? (node as { '#text'?: unknown })['#text'] : node;
  const n = Number(value);
  return Number.isFinite(n) ? n : 0;
}

function libvirtMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  // libxml appends its own warnings ("I/O warning : …") to the message; the first line is libvirt's.
  return message.split(/(?=I\/O warning)/)[0].trim();
}

function isNoDomain(err: unknown): boolean {
  return /domain not found|no domain with matching/i.test(err instanceof Error ? err.message : String(err));
}

/** libvirt storage pool XML for the pool types herd defines itself. */
export function storagePoolXml(def: StoragePoolDefinition): string {
  const esc = (s: string) =>
    s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll("'", '&apos;');
  switch (def.type) {
    case 'iscsi':
      return `<pool type='iscsi'><name>${esc(def.name)}</name><source><host name='${esc(def.portal)}' port='${def.port}'/><device path='${esc(def.targetIqn)}'/></source><target><path>/dev/disk/by-path</path></target></pool>`;
    case 'nfs':
      return `<pool type='netfs'><name>${esc(def.name)}</name><source><host name='${esc(def.server)}'/><dir path='${esc(def.export)}'/><format type='nfs'/></source><target><path>${esc(def.mountPoint ?? `/var/lib/herd/nfs/${def.name}`)}</path></target></pool>`;
    case 'lvm':
      return `<pool type='logical'><name>${esc(def.name)}</name><source><name>${esc(def.volumeGroup)}</name><format type='lvm2'/></source><target><path>/dev/${esc(def.volumeGroup)}</path></target></pool>`;
  }
}
