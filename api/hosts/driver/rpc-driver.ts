import path from 'node:path';
import type { Logger } from '../../../lib/log.js';
import { type ConnectionOptions, LibvirtConnection } from '../../../libvirt/connection.js';
import { ErrorCode, LibvirtError } from '../../../libvirt/packet.js';
import {
  type DomainEvent,
  DomainEventId,
  type DomainRef,
  P,
  type Procedure,
  type SecretRef,
  type StoragePoolRef,
  type StorageVolRef,
} from '../../../libvirt/procedures.js';
import { parseLibvirtUri } from '../../../libvirt/uri.js';
import { paramsRecord, type TypedParam } from '../../../libvirt/xdr.js';
import { parseHostUri } from '../host-uri.js';
import {
  BANDWIDTH_PARAMS,
  bandwidthOf,
  CPU_PERIOD_US,
  cpuQuotaUs,
  domainStateFromLibvirt,
  domainXml,
  IOTUNE_PARAMS,
  parseXml,
  shapeableNetwork,
} from './domain-xml.js';
import {
  type DomainEventCallbacks,
  type DomainInfo,
  type DomainJobInfo,
  type DomainSpec,
  type HostDriver,
  type HostInventory,
  type IoLimits,
  type StoragePoolDefinition,
  type StoragePoolInfo,
  type StorageVolumeInfo,
  UnsupportedByDriverError,
  type VirtSupport,
} from './host-driver.js';
import { JOB_OPERATIONS, migratesOnThisMachine } from './host-rules.js';
import { chapSecretUsage, chapSecretXml, SECRET_USAGE_ISCSI, storagePoolXml } from './storage-xml.js';
import { chooseVirtType, virtSupportFromCapabilities } from './virt-type.js';

const KiB_PER_MiB = 1024;
const GiB = 1024 ** 3;
const MIGRATION_TIMEOUT_MS = 6 * 60 * 60 * 1000;
const STORAGE_TIMEOUT_MS = 600_000;

/** libvirt-domain.h / libvirt-storage.h flags and numbers this driver uses. */
const AFFECT_LIVE = 1;
const AFFECT_CONFIG = 2;
const XML_INACTIVE = 2;
const MIGRATE_LIVE = 1;
const MIGRATE_PEER2PEER = 2;
const MIGRATE_PERSIST_DEST = 8;
const MIGRATE_UNDEFINE_SOURCE = 16;
const MIGRATE_UNSAFE = 512;
const STATS_STATE = 1;
const STATS_BALLOON = 4;
const STATS_VCPU = 8;
const POOL_RUNNING = 2;
const JOB_NONE = 0;
/** The domain events herd follows. */
const WATCHED_EVENTS = [
  DomainEventId.LIFECYCLE,
  DomainEventId.REBOOT,
  DomainEventId.JOB_COMPLETED,
  DomainEventId.MIGRATION_ITERATION,
];

/**
 * A libvirt host through herd's own RPC client (`libvirt/`): one connection per host, calls multiplexed on it,
 * reconnecting by itself.
 *
 * URIs are libvirt remote URIs (`qemu+unix:///system?socket=…`, `qemu+tls://host/system`,
 * `test+unix:///path/host.xml?socket=…`). A test-driver host file opened through a libvirtd is a fresh fake host
 * per connection: after a reconnect it is back to its file's state.
 */
export class RpcDriver implements HostDriver {
  /** What the host's capabilities offer (domain types, the CPU's vmx/svm): read once. */
  private virtSupport?: Promise<VirtSupport>;
  private readonly testHostName: string | null;
  /** Domains' vcpus and memory, by UUID, where the all-domain stats lack them (see listDomains). */
  private readonly sizes = new Map<string, { vcpus: number; memoryMiB: number }>();

  private constructor(
    readonly uri: string,
    private readonly conn: LibvirtConnection,
    private readonly log: Logger,
  ) {
    const parsed = parseLibvirtUri(uri);
    const file = parsed.name.replace(/^test:\/\//, '');
    this.testHostName = parsed.driver === 'test' ? path.basename(file, '.xml') || 'test' : null;
    // A new connection may be a new host (a test host file is a fresh fake host per connection).
    conn.on('reconnected', () => this.sizes.clear());
  }

  /** `via`: the URI to connect to, when not `uri` itself (a `test:///…` host through a libvirtd's socket). */
  static async open(
    uri: string,
    log: Logger,
    via: string = uri,
    options: ConnectionOptions = {},
  ): Promise<RpcDriver> {
    const conn = new LibvirtConnection(via, options);
    const hostLog = log.child({ host: uri });
    conn.on('disconnected', (err) =>
      hostLog.warn({ err: err?.message }, 'libvirt connection lost; reconnecting'),
    );
    conn.on('reconnected', () => hostLog.info('libvirt connection re-established'));
    try {
      await conn.start();
    } catch (err) {
      await conn.close();
      throw new Error(`cannot connect to ${uri}: ${(err as Error).message}`, { cause: err });
    }
    return new RpcDriver(uri, conn, hostLog);
  }

  /** The connection, for event subscriptions. */
  get connection(): LibvirtConnection {
    return this.conn;
  }

  private get isTestDriver(): boolean {
    return this.testHostName !== null;
  }

  async inventory(): Promise<HostInventory> {
    const [node, hostname, caps, nics] = await Promise.all([
      this.call(P.nodeGetInfo, undefined),
      this.testHostName ?? this.call(P.connectGetHostname, undefined),
      this.call(P.connectGetCapabilities, undefined),
      this.call(P.connectListAllInterfaces, undefined).catch((err) => {
        this.log.debug({ err }, 'no interface list');
        return [];
      }),
    ]);
    const uuid = parseXml(caps).capabilities?.host?.uuid;
    const virt = virtSupportFromCapabilities(caps);
    this.virtSupport = Promise.resolve(virt);
    return {
      hostname,
      uuid: typeof uuid === 'string' && uuid.length > 0 ? uuid : null,
      // nodeinfo's "CPU model" is the architecture (x86_64, aarch64) on every hypervisor driver.
      arch: node.model || null,
      cpus: node.cpus,
      cores: node.nodes * node.sockets * node.cores || null,
      mhz: node.mhz || null,
      memoryMiB: Number(node.memoryKiB / BigInt(KiB_PER_MiB)),
      nics: nics.map(({ name, mac }) =>
        /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac) ? { name, mac } : { name },
      ),
      virt,
    };
  }

  async ping(): Promise<void> {
    await this.call(P.connectGetHostname, undefined);
  }

  /**
   * Every domain in one call (ConnectGetAllDomainStats). A driver whose records lack the size (libvirt's test driver
   * reports only the state) has each domain asked alone once; its size is then kept until herd defines or undefines
   * it, or the connection is new.
   */
  async listDomains(): Promise<DomainInfo[]> {
    const records = await this.call(P.connectGetAllDomainStats, {
      stats: STATS_STATE | STATS_BALLOON | STATS_VCPU,
    });
    const out = await Promise.all(
      records.map(async ({ domain, params }) => {
        const stats = paramsRecord(params);
        const state = stats['state.state'];
        const vcpus = stats['vcpu.current'] ?? stats['vcpu.maximum'];
        const maxKiB = stats['balloon.maximum'];
        const size =
          typeof vcpus === 'number' && typeof maxKiB === 'bigint'
            ? { vcpus, memoryMiB: Number(maxKiB / BigInt(KiB_PER_MiB)) }
            : this.sizes.get(domain.uuid);
        if (typeof state === 'number' && size) {
          return { uuid: domain.uuid, name: domain.name, state: domainStateFromLibvirt(state), ...size };
        }
        // A domain undefined between the listing and this lookup is simply gone.
        return this.describe(domain).catch((err) => {
          if (isNoDomain(err)) return null;
          throw err;
        });
      }),
    );
    return out.filter((d): d is DomainInfo => d !== null);
  }

  async domain(uuid: string): Promise<DomainInfo | null> {
    const dom = await this.lookup(uuid, { optional: true });
    return dom ? this.describe(dom) : null;
  }

  async define(spec: DomainSpec): Promise<void> {
    this.virtSupport ??= this.call(P.connectGetCapabilities, undefined).then(virtSupportFromCapabilities);
    this.virtSupport.catch(() => {
      this.virtSupport = undefined;
    });
    const choice = chooseVirtType(await this.virtSupport, spec.virtType ?? 'auto');
    if (!choice.type) throw new Error(`virtType: ${this.uri}: ${choice.reason}`);
    this.sizes.delete(spec.uuid);
    await this.call(P.domainDefineXml, domainXml(spec, choice.type));
  }

  async undefine(uuid: string): Promise<void> {
    this.sizes.delete(uuid);
    await this.call(P.domainUndefine, await this.lookup(uuid));
  }

  async start(uuid: string): Promise<void> {
    await this.call(P.domainCreate, await this.lookup(uuid));
  }

  async shutdown(uuid: string): Promise<void> {
    await this.call(P.domainShutdown, await this.lookup(uuid));
  }

  async destroy(uuid: string): Promise<void> {
    await this.call(P.domainDestroy, await this.lookup(uuid));
  }

  async suspend(uuid: string): Promise<void> {
    await this.call(P.domainSuspend, await this.lookup(uuid));
  }

  async resume(uuid: string): Promise<void> {
    await this.call(P.domainResume, await this.lookup(uuid));
  }

  async save(uuid: string, file: string): Promise<void> {
    await this.call(P.domainSave, { dom: await this.lookup(uuid), to: file }, STORAGE_TIMEOUT_MS);
  }

  async restore(file: string): Promise<void> {
    await this.call(P.domainRestore, file, STORAGE_TIMEOUT_MS);
  }

  /**
   * Live, peer-to-peer: the source libvirtd connects to `destinationUri` itself. On this same machine (a
   * destination without a host, or on loopback) the memory goes over 127.0.0.1 and the disks are the same files
   * (see migratesOnThisMachine in host-rules.ts): migrate_uri and listen_address on loopback, UNSAFE.
   */
  async migrateLive(uuid: string, destinationUri: string): Promise<void> {
    if (this.isTestDriver) {
      throw new UnsupportedByDriverError(
        "live migration not supported by this host's driver (test); use cold migration",
      );
    }
    // The source libvirtd opens the destination URI (peer to peer): the same gate as for opening one.
    parseHostUri(destinationUri);
    const dom = await this.lookup(uuid);
    const params: TypedParam[] = [];
    let flags = MIGRATE_LIVE | MIGRATE_PEER2PEER | MIGRATE_PERSIST_DEST | MIGRATE_UNDEFINE_SOURCE;
    if (migratesOnThisMachine(destinationUri)) {
      params.push({ field: 'migrate_uri', type: 'string', value: 'tcp://127.0.0.1' });
      params.push({ field: 'listen_address', type: 'string', value: '127.0.0.1' });
      flags |= MIGRATE_UNSAFE;
    }
    try {
      await this.conn.call(
        P.domainMigratePerform3Params,
        { dom, dconnuri: destinationUri, params, flags },
        { timeoutMs: MIGRATION_TIMEOUT_MS },
      );
    } catch (err) {
      throw new Error(`live migration of ${uuid} to ${destinationUri} failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  async jobInfo(uuid: string): Promise<DomainJobInfo | null> {
    if (this.isTestDriver) return null;
    const dom = await this.lookup(uuid, { optional: true });
    if (!dom) return null;
    const job = await this.conn.call(P.domainGetJobStats, { dom }, { timeoutMs: 10_000 }).catch((err) => {
      this.log.debug({ err, uuid }, 'job stats failed');
      return null;
    });
    if (!job || job.type === JOB_NONE) return null;
    const stats = paramsRecord(job.params);
    const total = Number(stats.data_total ?? 0);
    if (!(total > 0)) return null;
    return {
      operation: JOB_OPERATIONS[String(stats.operation)] ?? 'unknown',
      dataTotalBytes: total,
      dataProcessedBytes: Number(stats.data_processed ?? 0),
      dataRemainingBytes: Number(stats.data_remaining ?? 0),
    };
  }

  async abortJob(uuid: string): Promise<void> {
    await this.call(P.domainAbortJob, await this.lookup(uuid));
  }

  async domainXml(uuid: string): Promise<string> {
    return this.call(P.domainGetXmlDesc, { dom: await this.lookup(uuid) });
  }

  async setCpuLimit(uuid: string, limitPercent: number | null): Promise<void> {
    if (this.isTestDriver) return;
    const dom = await this.lookup(uuid);
    const { state } = await this.describe(dom);
    const running = state === 'running' || state === 'paused';
    // -1: no quota (the cgroup's cpu.cfs_quota_us = -1).
    const quota = limitPercent === null ? -1 : cpuQuotaUs(limitPercent);
    await this.call(P.domainSetSchedulerParametersFlags, {
      dom,
      flags: AFFECT_CONFIG | (running ? AFFECT_LIVE : 0),
      params: [
        { field: 'vcpu_period', type: 'ullong', value: BigInt(CPU_PERIOD_US) },
        { field: 'vcpu_quota', type: 'llong', value: BigInt(quota) },
      ],
    });
  }

  /**
   * virDomainSetInterfaceParameters on each NIC that can be shaped (by MAC; every field, 0 lifting it) and
   * virDomainSetBlockIoTune on each disk (by target), on the persistent definition and, while it runs, live.
   */
  async setIoLimits(
    uuid: string,
    limits: IoLimits,
    kinds: ReadonlyArray<'net' | 'disk'> = ['net', 'disk'],
  ): Promise<void> {
    if (this.isTestDriver) return;
    const dom = await this.lookup(uuid);
    const { state } = await this.describe(dom);
    const running = state === 'running' || state === 'paused';
    const flags = AFFECT_CONFIG | (running ? AFFECT_LIVE : 0);
    const devices =
      parseXml(await this.call(P.domainGetXmlDesc, { dom, flags: running ? 0 : XML_INACTIVE })).domain
        ?.devices ?? {};
    const nicParams: TypedParam[] = (['inbound', 'outbound'] as const).flatMap((direction) => {
      const set = bandwidthOf(limits, direction);
      return Object.keys(BANDWIDTH_PARAMS[direction]).map((name) => ({
        field: `${direction}.${name}`,
        type: 'uint' as const,
        value: set?.[name as keyof typeof set] ?? 0,
      }));
    });
    for (const nic of kinds.includes('net') ? asArray(devices.interface) : []) {
      const mac = nic.mac?.['@address'];
      if (typeof mac !== 'string' || !shapeableNetwork(String(nic['@type']))) continue;
      await this.call(P.domainSetInterfaceParameters, { dom, device: mac, params: nicParams, flags });
    }
    const diskParams: TypedParam[] = Object.entries(IOTUNE_PARAMS).map(([field, name]) => ({
      field,
      type: 'ullong',
      value: BigInt(limits[name] ?? 0),
    }));
    for (const disk of kinds.includes('disk') ? asArray(devices.disk) : []) {
      const target = disk.target?.['@dev'];
      if (disk['@device'] !== 'disk' || typeof target !== 'string') continue;
      await this.call(P.domainSetBlockIoTune, { dom, disk: target, params: diskParams, flags });
    }
  }

  async listStoragePools(): Promise<StoragePoolInfo[]> {
    const pools = await this.call(P.connectListAllStoragePools, undefined);
    return Promise.all(
      byName(pools).map(async (pool) => {
        const [info, xml] = await Promise.all([
          this.call(P.storagePoolGetInfo, pool),
          this.call(P.storagePoolGetXmlDesc, { pool }),
        ]);
        return {
          name: pool.name,
          type: String(parseXml(xml).pool?.['@type'] ?? 'unknown'),
          capacityGiB: Number(info.capacity) / GiB,
          availableGiB: Number(info.available) / GiB,
          active: info.state === POOL_RUNNING,
        };
      }),
    );
  }

  async defineStoragePool(definition: StoragePoolDefinition): Promise<void> {
    let secret: SecretRef | undefined;
    let pool: StoragePoolRef | undefined;
    try {
      if (definition.type === 'iscsi' && definition.chapUsername) {
        secret = await this.call(P.secretDefineXml, { xml: chapSecretXml(definition.name) });
        await this.call(P.secretSetValue, {
          secret,
          value: new TextEncoder().encode(definition.chapSecret ?? ''),
        });
      }
      pool = await this.call(P.storagePoolDefineXml, { xml: storagePoolXml(definition) });
      // netfs needs its mount point made; an LVM group or an iSCSI target already exists and must not be
      // "built" (that would format the group's physical volumes).
      if (definition.type === 'nfs') await this.call(P.storagePoolBuild, { pool }, STORAGE_TIMEOUT_MS);
      await this.call(P.storagePoolSetAutostart, { pool, autostart: true });
      await this.call(P.storagePoolCreate, { pool }, STORAGE_TIMEOUT_MS);
    } catch (err) {
      // Nothing half-defined stays behind: the pool, then the secret it referred to.
      if (pool) await this.dropPool(pool);
      if (secret) await this.dropSecret(secret);
      throw err;
    }
  }

  async undefineStoragePool(definition: StoragePoolDefinition): Promise<void> {
    const pool = await this.pool(definition.name).catch((err) => {
      if (isLibvirtCode(err, ErrorCode.NO_STORAGE_POOL)) return null;
      throw err;
    });
    if (pool) await this.dropPool(pool);
    if (definition.type !== 'iscsi') return;
    const secret = await this.call(P.secretLookupByUsage, {
      usageType: SECRET_USAGE_ISCSI,
      usageId: chapSecretUsage(definition.name),
    }).catch((err) => {
      if (isLibvirtCode(err, ErrorCode.NO_SECRET)) return null;
      throw err;
    });
    if (secret) await this.dropSecret(secret);
  }

  async refreshStoragePool(name: string): Promise<void> {
    const pool = await this.pool(name);
    if (!(await this.call(P.storagePoolIsActive, pool))) {
      await this.call(P.storagePoolCreate, { pool }, STORAGE_TIMEOUT_MS);
    }
    await this.call(P.storagePoolRefresh, { pool }, STORAGE_TIMEOUT_MS);
  }

  async listVolumes(name: string): Promise<StorageVolumeInfo[]> {
    const pool = await this.pool(name);
    const vols = await this.call(P.storagePoolListAllVolumes, { pool });
    // By name, as virsh lists them: libvirt's own order is its hash table's.
    return Promise.all(byName(vols).map((vol) => this.volume(vol)));
  }

  async createVolume(poolName: string, name: string, sizeGiB: number): Promise<StorageVolumeInfo> {
    const pool = await this.pool(poolName);
    const esc = (s: string) =>
      s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll("'", '&apos;');
    const bytes = Math.round(sizeGiB * GiB);
    const vol = await this.call(
      P.storageVolCreateXml,
      { pool, xml: `<volume><name>${esc(name)}</name><capacity unit='bytes'>${bytes}</capacity></volume>` },
      STORAGE_TIMEOUT_MS,
    );
    return this.volume(vol);
  }

  async deleteVolume(poolName: string, name: string): Promise<void> {
    const pool = await this.pool(poolName);
    const vol = await this.call(P.storageVolLookupByName, { pool, name });
    await this.call(P.storageVolDelete, { vol }, STORAGE_TIMEOUT_MS);
  }

  async watchDomainEvents(handlers: DomainEventCallbacks): Promise<() => Promise<void>> {
    const deliver = (ev: DomainEvent) => {
      handlers.onEvent({
        kind: ev.kind,
        uuid: ev.domain.uuid,
        name: ev.domain.name,
        ...(ev.kind === 'lifecycle' ? { detail: ev.eventName } : {}),
      });
    };
    const onReconnect = () => handlers.onReconnect?.();
    this.conn.on('reconnected', onReconnect);
    const unsubscribe: Array<() => Promise<void>> = [];
    const all = async () => {
      this.conn.off('reconnected', onReconnect);
      await Promise.all(unsubscribe.map((u) => u()));
    };
    try {
      for (const id of WATCHED_EVENTS) unsubscribe.push(await this.conn.subscribe(id, deliver));
    } catch (err) {
      await all();
      throw new Error(`libvirt (${this.uri}): domain events: ${(err as Error).message}`, { cause: err });
    }
    return all;
  }

  async close(): Promise<void> {
    await this.conn.close();
  }

  /** Stops (if running) and undefines a pool; a failure is logged, not thrown (a cleanup step). */
  private async dropPool(pool: StoragePoolRef): Promise<void> {
    if (await this.call(P.storagePoolIsActive, pool).catch(() => false)) {
      await this.call(P.storagePoolDestroy, pool).catch((err) =>
        this.log.warn({ err: (err as Error).message, pool: pool.name }, 'storage pool stop failed'),
      );
    }
    await this.call(P.storagePoolUndefine, pool).catch((err) =>
      this.log.warn({ err: (err as Error).message, pool: pool.name }, 'storage pool undefine failed'),
    );
  }

  private async dropSecret(secret: SecretRef): Promise<void> {
    await this.call(P.secretUndefine, secret).catch((err) =>
      this.log.warn({ err: (err as Error).message, usage: secret.usageId }, 'secret undefine failed'),
    );
  }

  private async describe(dom: DomainRef): Promise<DomainInfo> {
    const info = await this.call(P.domainGetInfo, dom);
    const size = { vcpus: info.vcpus, memoryMiB: Number(info.maxMemKiB / BigInt(KiB_PER_MiB)) };
    this.sizes.set(dom.uuid, size);
    return { uuid: dom.uuid, name: dom.name, state: domainStateFromLibvirt(info.state), ...size };
  }

  private async volume(vol: StorageVolRef): Promise<StorageVolumeInfo> {
    const [info, volPath] = await Promise.all([
      this.call(P.storageVolGetInfo, vol),
      this.call(P.storageVolGetPath, vol),
    ]);
    return { name: vol.name, path: volPath, sizeGiB: Number(info.capacity) / GiB };
  }

  private pool(name: string): Promise<StoragePoolRef> {
    return this.call(P.storagePoolLookupByName, name);
  }

  private async lookup(uuid: string): Promise<DomainRef>;
  private async lookup(uuid: string, options: { optional: true }): Promise<DomainRef | null>;
  private async lookup(uuid: string, options?: { optional: true }): Promise<DomainRef | null> {
    try {
      return await this.conn.call(P.domainLookupByUuid, uuid);
    } catch (err) {
      if (isNoDomain(err)) {
        if (options?.optional) return null;
        throw new Error(`domain ${uuid} not found on ${this.uri}`, { cause: err });
      }
      throw new Error(`libvirt (${this.uri}): ${(err as Error).message}`, { cause: err });
    }
  }

  /** libvirt's message, with the host's URI; the LibvirtError (code, domain) stays as the cause. */
  private async call<A, R>(proc: Procedure<A, R>, args: A, timeoutMs?: number): Promise<R> {
    try {
      return await this.conn.call(proc, args, timeoutMs === undefined ? undefined : { timeoutMs });
    } catch (err) {
      throw new Error(`libvirt (${this.uri}): ${(err as Error).message}`, { cause: err });
    }
  }
}

function asArray(v: unknown): Array<Record<string, any>> {
  if (v === undefined || v === null || v === '') return [];
  return (Array.isArray(v) ? v : [v]) as Array<Record<string, any>>;
}

function isNoDomain(err: unknown): boolean {
  return isLibvirtCode(err, ErrorCode.NO_DOMAIN);
}

function isLibvirtCode(err: unknown, code: number): boolean {
  const cause = err instanceof Error && err.cause instanceof LibvirtError ? err.cause : err;
  return cause instanceof LibvirtError && cause.code === code;
}

function byName<T extends { name: string }>(list: T[]): T[] {
  return [...list].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
