/**
 * The part of libvirt's remote protocol (src/remote/remote_protocol.x, program 0x20008086 version 1) that herd
 * uses: the procedure numbers in one table, and for each call the encoder of its `_args` and the decoder of its
 * `_ret`, written from the .x file. Limits are remote_protocol.x's `_MAX` constants (the newest, largest values:
 * a decoder that accepts what a current libvirtd may send, and never more).
 */
import { type TypedParam, XdrReader, XdrWriter } from './xdr.js';

export const REMOTE_PROGRAM = 0x20008086;
export const REMOTE_PROTOCOL_VERSION = 1;
export const KEEPALIVE_PROGRAM = 0x6b656570;
export const KEEPALIVE_PROTOCOL_VERSION = 1;
export const KeepaliveProc = { PING: 1, PONG: 2 } as const;

/** `REMOTE_PROC_*`: every procedure herd calls or receives, by its number in remote_protocol.x. */
export const Proc = {
  CONNECT_OPEN: 1,
  CONNECT_CLOSE: 2,
  CONNECT_GET_VERSION: 4,
  NODE_GET_INFO: 6,
  CONNECT_GET_CAPABILITIES: 7,
  DOMAIN_CREATE: 9,
  DOMAIN_DEFINE_XML: 11,
  DOMAIN_DESTROY: 12,
  DOMAIN_GET_XML_DESC: 14,
  DOMAIN_GET_INFO: 16,
  DOMAIN_LOOKUP_BY_NAME: 23,
  DOMAIN_LOOKUP_BY_UUID: 24,
  DOMAIN_RESUME: 28,
  DOMAIN_SHUTDOWN: 33,
  DOMAIN_SUSPEND: 34,
  DOMAIN_UNDEFINE: 35,
  DOMAIN_RESTORE: 54,
  DOMAIN_SAVE: 55,
  DOMAIN_GET_SCHEDULER_TYPE: 56,
  CONNECT_GET_HOSTNAME: 59,
  CONNECT_SUPPORTS_FEATURE: 60,
  AUTH_LIST: 66,
  STORAGE_POOL_CREATE_XML: 76,
  STORAGE_POOL_DEFINE_XML: 77,
  STORAGE_POOL_CREATE: 78,
  STORAGE_POOL_BUILD: 79,
  STORAGE_POOL_DESTROY: 80,
  STORAGE_POOL_UNDEFINE: 82,
  STORAGE_POOL_REFRESH: 83,
  STORAGE_POOL_LOOKUP_BY_NAME: 84,
  STORAGE_POOL_GET_INFO: 87,
  STORAGE_POOL_GET_XML_DESC: 88,
  STORAGE_POOL_SET_AUTOSTART: 90,
  STORAGE_VOL_CREATE_XML: 93,
  STORAGE_VOL_DELETE: 94,
  STORAGE_VOL_LOOKUP_BY_NAME: 95,
  STORAGE_VOL_GET_INFO: 98,
  STORAGE_VOL_GET_XML_DESC: 99,
  STORAGE_VOL_GET_PATH: 100,
  SECRET_LOOKUP_BY_UUID: 141,
  SECRET_DEFINE_XML: 142,
  SECRET_SET_VALUE: 144,
  SECRET_UNDEFINE: 146,
  SECRET_LOOKUP_BY_USAGE: 147,
  STORAGE_POOL_IS_ACTIVE: 154,
  CONNECT_GET_LIB_VERSION: 157,
  DOMAIN_ABORT_JOB: 164,
  DOMAIN_CREATE_WITH_FLAGS: 196,
  DOMAIN_GET_STATE: 212,
  DOMAIN_SET_SCHEDULER_PARAMETERS_FLAGS: 219,
  DOMAIN_GET_SCHEDULER_PARAMETERS_FLAGS: 223,
  DOMAIN_UNDEFINE_FLAGS: 231,
  DOMAIN_SAVE_FLAGS: 232,
  DOMAIN_RESTORE_FLAGS: 233,
  DOMAIN_DESTROY_FLAGS: 234,
  DOMAIN_SET_BLOCK_IO_TUNE: 252,
  DOMAIN_SET_INTERFACE_PARAMETERS: 256,
  DOMAIN_SHUTDOWN_FLAGS: 258,
  CONNECT_LIST_ALL_DOMAINS: 273,
  CONNECT_LIST_ALL_STORAGE_POOLS: 281,
  STORAGE_POOL_LIST_ALL_VOLUMES: 282,
  CONNECT_LIST_ALL_INTERFACES: 284,
  DOMAIN_GET_JOB_STATS: 298,
  DOMAIN_MIGRATE_PERFORM3_PARAMS: 305,
  CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY: 316,
  CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY: 317,
  DOMAIN_EVENT_CALLBACK_LIFECYCLE: 318,
  DOMAIN_EVENT_CALLBACK_REBOOT: 319,
  CONNECT_GET_ALL_DOMAIN_STATS: 344,
  DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION: 359,
  DOMAIN_EVENT_CALLBACK_JOB_COMPLETED: 363,
} as const;

/** remote_protocol.x `_MAX` limits. */
export const Limits = {
  STRING: 4_194_304,
  DOMAIN_LIST: 16_384,
  STORAGE_POOL_LIST: 4_096,
  STORAGE_VOL_LIST: 16_384,
  INTERFACE_LIST: 16_384,
  SCHEDULER_PARAMETERS: 16,
  INTERFACE_PARAMETERS: 16,
  BLOCK_IO_TUNE_PARAMETERS: 32,
  JOB_STATS: 64,
  MIGRATE_PARAM_LIST: 64,
  MIGRATE_COOKIE: 4_194_304,
  ALL_DOMAIN_STATS: 262_144,
  AUTH_TYPE_LIST: 20,
  SECRET_VALUE: 65_536,
} as const;

/** `VIR_DRV_FEATURE_*` asked with CONNECT_SUPPORTS_FEATURE. */
export const Feature = {
  PROGRAM_KEEPALIVE: 10,
  REMOTE_EVENT_CALLBACK: 14,
  REMOTE_CLOSE_CALLBACK: 15,
} as const;

/** `remote_auth_type`. */
export const AuthType = { NONE: 0, SASL: 1, POLKIT: 2 } as const;

/** `VIR_DOMAIN_EVENT_ID_*`. */
export const DomainEventId = { LIFECYCLE: 0, REBOOT: 1, MIGRATION_ITERATION: 20, JOB_COMPLETED: 21 } as const;

/** `virDomainEventType`: the `event` of a lifecycle event. */
export const LifecycleEvent = [
  'defined',
  'undefined',
  'started',
  'suspended',
  'resumed',
  'stopped',
  'shutdown',
  'pmsuspended',
  'crashed',
] as const;

/** `virDomainState`. */
export const DomainStateName = [
  'nostate',
  'running',
  'blocked',
  'paused',
  'shutdown',
  'shutoff',
  'crashed',
  'pmsuspended',
] as const;

/** `remote_nonnull_domain`: how the protocol names a domain. */
export interface DomainRef {
  name: string;
  uuid: string;
  id: number;
}

export interface StoragePoolRef {
  name: string;
  uuid: string;
}

export interface StorageVolRef {
  pool: string;
  name: string;
  key: string;
}

export interface SecretRef {
  uuid: string;
  usageType: number;
  usageId: string;
}

export const readDomain = (r: XdrReader): DomainRef => ({ name: r.string(), uuid: r.uuid(), id: r.int() });
export const writeDomain = (w: XdrWriter, d: DomainRef) => w.string(d.name).uuid(d.uuid).int(d.id);
const readPool = (r: XdrReader): StoragePoolRef => ({ name: r.string(), uuid: r.uuid() });
const writePool = (w: XdrWriter, p: StoragePoolRef) => w.string(p.name).uuid(p.uuid);
const readVol = (r: XdrReader): StorageVolRef => ({ pool: r.string(), name: r.string(), key: r.string() });
const writeVol = (w: XdrWriter, v: StorageVolRef) => w.string(v.pool).string(v.name).string(v.key);
const readSecret = (r: XdrReader): SecretRef => ({ uuid: r.uuid(), usageType: r.int(), usageId: r.string() });
const writeSecret = (w: XdrWriter, s: SecretRef) => w.uuid(s.uuid).int(s.usageType).string(s.usageId);
const optString = (w: XdrWriter, s: string | null | undefined) => w.optional(s, (x, v) => x.string(v));

/** One call: its number, how its arguments are written and how its reply is read. */
export interface Procedure<A, R> {
  readonly name: string;
  readonly proc: number;
  encode(w: XdrWriter, args: A): void;
  decode(r: XdrReader): R;
}

const none = () => undefined;

function def<A, R>(
  name: string,
  proc: number,
  encode: (w: XdrWriter, args: A) => void,
  decode: (r: XdrReader) => R,
): Procedure<A, R> {
  return { name, proc, encode, decode };
}

export interface NodeInfo {
  model: string;
  /** KiB. */
  memoryKiB: bigint;
  cpus: number;
  mhz: number;
  nodes: number;
  sockets: number;
  cores: number;
  threads: number;
}

export interface DomainInfoRet {
  state: number;
  maxMemKiB: bigint;
  memoryKiB: bigint;
  vcpus: number;
  cpuTimeNs: bigint;
}

export interface StoragePoolInfoRet {
  state: number;
  capacity: bigint;
  allocation: bigint;
  available: bigint;
}

export interface StorageVolInfoRet {
  type: number;
  capacity: bigint;
  allocation: bigint;
}

export interface DomainStatsRecord {
  domain: DomainRef;
  params: TypedParam[];
}

const string = (r: XdrReader) => r.string();
const int = (r: XdrReader) => r.int();

/** The calls, keyed by a name close to libvirt's C API (virConnectOpen → connectOpen). */
export const P = {
  authList: def<void, number[]>('AuthList', Proc.AUTH_LIST, none, (r) => r.array(Limits.AUTH_TYPE_LIST, int)),
  connectOpen: def<{ name: string | null; flags?: number }, void>(
    'ConnectOpen',
    Proc.CONNECT_OPEN,
    (w, a) => optString(w, a.name).uint(a.flags ?? 0),
    none,
  ),
  connectClose: def<void, void>('ConnectClose', Proc.CONNECT_CLOSE, none, none),
  connectSupportsFeature: def<number, boolean>(
    'ConnectSupportsFeature',
    Proc.CONNECT_SUPPORTS_FEATURE,
    (w, f) => w.int(f),
    (r) => r.int() !== 0,
  ),
  connectGetVersion: def<void, bigint>('ConnectGetVersion', Proc.CONNECT_GET_VERSION, none, (r) =>
    r.uhyper(),
  ),
  connectGetLibVersion: def<void, bigint>('ConnectGetLibVersion', Proc.CONNECT_GET_LIB_VERSION, none, (r) =>
    r.uhyper(),
  ),
  connectGetHostname: def<void, string>('ConnectGetHostname', Proc.CONNECT_GET_HOSTNAME, none, string),
  connectGetCapabilities: def<void, string>(
    'ConnectGetCapabilities',
    Proc.CONNECT_GET_CAPABILITIES,
    none,
    string,
  ),
  nodeGetInfo: def<void, NodeInfo>('NodeGetInfo', Proc.NODE_GET_INFO, none, (r) => ({
    model: r.charArray(32),
    memoryKiB: r.uhyper(),
    cpus: r.int(),
    mhz: r.int(),
    nodes: r.int(),
    sockets: r.int(),
    cores: r.int(),
    threads: r.int(),
  })),

  domainLookupByUuid: def<string, DomainRef>(
    'DomainLookupByUUID',
    Proc.DOMAIN_LOOKUP_BY_UUID,
    (w, uuid) => w.uuid(uuid),
    readDomain,
  ),
  domainLookupByName: def<string, DomainRef>(
    'DomainLookupByName',
    Proc.DOMAIN_LOOKUP_BY_NAME,
    (w, name) => w.string(name),
    readDomain,
  ),
  domainDefineXml: def<string, DomainRef>(
    'DomainDefineXML',
    Proc.DOMAIN_DEFINE_XML,
    (w, xml) => w.string(xml),
    readDomain,
  ),
  domainUndefine: def<DomainRef, void>('DomainUndefine', Proc.DOMAIN_UNDEFINE, writeDomain, none),
  domainUndefineFlags: def<{ dom: DomainRef; flags: number }, void>(
    'DomainUndefineFlags',
    Proc.DOMAIN_UNDEFINE_FLAGS,
    (w, a) => writeDomain(w, a.dom).uint(a.flags),
    none,
  ),
  domainCreate: def<DomainRef, void>('DomainCreate', Proc.DOMAIN_CREATE, writeDomain, none),
  domainCreateWithFlags: def<{ dom: DomainRef; flags: number }, DomainRef>(
    'DomainCreateWithFlags',
    Proc.DOMAIN_CREATE_WITH_FLAGS,
    (w, a) => writeDomain(w, a.dom).uint(a.flags),
    readDomain,
  ),
  domainShutdown: def<DomainRef, void>('DomainShutdown', Proc.DOMAIN_SHUTDOWN, writeDomain, none),
  domainShutdownFlags: def<{ dom: DomainRef; flags: number }, void>(
    'DomainShutdownFlags',
    Proc.DOMAIN_SHUTDOWN_FLAGS,
    (w, a) => writeDomain(w, a.dom).uint(a.flags),
    none,
  ),
  domainDestroy: def<DomainRef, void>('DomainDestroy', Proc.DOMAIN_DESTROY, writeDomain, none),
  domainDestroyFlags: def<{ dom: DomainRef; flags: number }, void>(
    'DomainDestroyFlags',
    Proc.DOMAIN_DESTROY_FLAGS,
    (w, a) => writeDomain(w, a.dom).uint(a.flags),
    none,
  ),
  domainSuspend: def<DomainRef, void>('DomainSuspend', Proc.DOMAIN_SUSPEND, writeDomain, none),
  domainResume: def<DomainRef, void>('DomainResume', Proc.DOMAIN_RESUME, writeDomain, none),
  domainSave: def<{ dom: DomainRef; to: string }, void>(
    'DomainSave',
    Proc.DOMAIN_SAVE,
    (w, a) => writeDomain(w, a.dom).string(a.to),
    none,
  ),
  domainSaveFlags: def<{ dom: DomainRef; to: string; dxml?: string | null; flags: number }, void>(
    'DomainSaveFlags',
    Proc.DOMAIN_SAVE_FLAGS,
    (w, a) => optString(writeDomain(w, a.dom).string(a.to), a.dxml).uint(a.flags),
    none,
  ),
  domainRestore: def<string, void>('DomainRestore', Proc.DOMAIN_RESTORE, (w, from) => w.string(from), none),
  domainRestoreFlags: def<{ from: string; dxml?: string | null; flags: number }, void>(
    'DomainRestoreFlags',
    Proc.DOMAIN_RESTORE_FLAGS,
    (w, a) => optString(w.string(a.from), a.dxml).uint(a.flags),
    none,
  ),
  domainGetInfo: def<DomainRef, DomainInfoRet>('DomainGetInfo', Proc.DOMAIN_GET_INFO, writeDomain, (r) => ({
    state: r.uint() & 0xff,
    maxMemKiB: r.uhyper(),
    memoryKiB: r.uhyper(),
    vcpus: r.uint() & 0xffff,
    cpuTimeNs: r.uhyper(),
  })),
  domainGetState: def<{ dom: DomainRef; flags?: number }, { state: number; reason: number }>(
    'DomainGetState',
    Proc.DOMAIN_GET_STATE,
    (w, a) => writeDomain(w, a.dom).uint(a.flags ?? 0),
    (r) => ({ state: r.int(), reason: r.int() }),
  ),
  domainGetXmlDesc: def<{ dom: DomainRef; flags?: number }, string>(
    'DomainGetXMLDesc',
    Proc.DOMAIN_GET_XML_DESC,
    (w, a) => writeDomain(w, a.dom).uint(a.flags ?? 0),
    string,
  ),
  connectListAllDomains: def<{ flags?: number } | undefined, DomainRef[]>(
    'ConnectListAllDomains',
    Proc.CONNECT_LIST_ALL_DOMAINS,
    (w, a) => w.int(1).uint(a?.flags ?? 0),
    (r) => {
      const domains = r.array(Limits.DOMAIN_LIST, readDomain);
      r.uint();
      return domains;
    },
  ),
  connectGetAllDomainStats: def<
    { domains?: DomainRef[]; stats?: number; flags?: number } | undefined,
    DomainStatsRecord[]
  >(
    'ConnectGetAllDomainStats',
    Proc.CONNECT_GET_ALL_DOMAIN_STATS,
    (w, a) =>
      w
        .array(a?.domains ?? [], Limits.DOMAIN_LIST, writeDomain)
        .uint(a?.stats ?? 0)
        .uint(a?.flags ?? 0),
    (r) =>
      r.array(Limits.DOMAIN_LIST, (x) => ({
        domain: readDomain(x),
        params: x.typedParams(Limits.ALL_DOMAIN_STATS),
      })),
  ),
  domainGetJobStats: def<{ dom: DomainRef; flags?: number }, { type: number; params: TypedParam[] }>(
    'DomainGetJobStats',
    Proc.DOMAIN_GET_JOB_STATS,
    (w, a) => writeDomain(w, a.dom).uint(a.flags ?? 0),
    (r) => ({ type: r.int(), params: r.typedParams(Limits.JOB_STATS) }),
  ),
  domainAbortJob: def<DomainRef, void>('DomainAbortJob', Proc.DOMAIN_ABORT_JOB, writeDomain, none),
  domainMigratePerform3Params: def<
    { dom: DomainRef; dconnuri: string | null; params: TypedParam[]; cookieIn?: Uint8Array; flags: number },
    Uint8Array
  >(
    'DomainMigratePerform3Params',
    Proc.DOMAIN_MIGRATE_PERFORM3_PARAMS,
    (w, a) => {
      optString(writeDomain(w, a.dom), a.dconnuri);
      w.typedParams(a.params, Limits.MIGRATE_PARAM_LIST);
      w.opaque(a.cookieIn ?? new Uint8Array(0), Limits.MIGRATE_COOKIE).uint(a.flags);
    },
    (r) => r.opaque(Limits.MIGRATE_COOKIE),
  ),
  domainGetSchedulerType: def<DomainRef, { type: string; nparams: number }>(
    'DomainGetSchedulerType',
    Proc.DOMAIN_GET_SCHEDULER_TYPE,
    writeDomain,
    (r) => ({ type: r.string(), nparams: r.int() }),
  ),
  domainGetSchedulerParametersFlags: def<{ dom: DomainRef; nparams: number; flags: number }, TypedParam[]>(
    'DomainGetSchedulerParametersFlags',
    Proc.DOMAIN_GET_SCHEDULER_PARAMETERS_FLAGS,
    (w, a) => writeDomain(w, a.dom).int(a.nparams).uint(a.flags),
    (r) => r.typedParams(Limits.SCHEDULER_PARAMETERS),
  ),
  domainSetSchedulerParametersFlags: def<{ dom: DomainRef; params: TypedParam[]; flags: number }, void>(
    'DomainSetSchedulerParametersFlags',
    Proc.DOMAIN_SET_SCHEDULER_PARAMETERS_FLAGS,
    (w, a) => writeDomain(w, a.dom).typedParams(a.params, Limits.SCHEDULER_PARAMETERS).uint(a.flags),
    none,
  ),
  domainSetInterfaceParameters: def<
    { dom: DomainRef; device: string; params: TypedParam[]; flags: number },
    void
  >(
    'DomainSetInterfaceParameters',
    Proc.DOMAIN_SET_INTERFACE_PARAMETERS,
    (w, a) =>
      writeDomain(w, a.dom).string(a.device).typedParams(a.params, Limits.INTERFACE_PARAMETERS).uint(a.flags),
    none,
  ),
  domainSetBlockIoTune: def<{ dom: DomainRef; disk: string; params: TypedParam[]; flags: number }, void>(
    'DomainSetBlockIoTune',
    Proc.DOMAIN_SET_BLOCK_IO_TUNE,
    (w, a) =>
      writeDomain(w, a.dom)
        .string(a.disk)
        .typedParams(a.params, Limits.BLOCK_IO_TUNE_PARAMETERS)
        .uint(a.flags),
    none,
  ),

  connectListAllStoragePools: def<{ flags?: number } | undefined, StoragePoolRef[]>(
    'ConnectListAllStoragePools',
    Proc.CONNECT_LIST_ALL_STORAGE_POOLS,
    (w, a) => w.int(1).uint(a?.flags ?? 0),
    (r) => {
      const pools = r.array(Limits.STORAGE_POOL_LIST, readPool);
      r.uint();
      return pools;
    },
  ),
  storagePoolLookupByName: def<string, StoragePoolRef>(
    'StoragePoolLookupByName',
    Proc.STORAGE_POOL_LOOKUP_BY_NAME,
    (w, name) => w.string(name),
    readPool,
  ),
  storagePoolGetInfo: def<StoragePoolRef, StoragePoolInfoRet>(
    'StoragePoolGetInfo',
    Proc.STORAGE_POOL_GET_INFO,
    writePool,
    (r) => ({ state: r.uint() & 0xff, capacity: r.uhyper(), allocation: r.uhyper(), available: r.uhyper() }),
  ),
  storagePoolGetXmlDesc: def<{ pool: StoragePoolRef; flags?: number }, string>(
    'StoragePoolGetXMLDesc',
    Proc.STORAGE_POOL_GET_XML_DESC,
    (w, a) => writePool(w, a.pool).uint(a.flags ?? 0),
    string,
  ),
  storagePoolIsActive: def<StoragePoolRef, boolean>(
    'StoragePoolIsActive',
    Proc.STORAGE_POOL_IS_ACTIVE,
    writePool,
    (r) => r.int() !== 0,
  ),
  storagePoolRefresh: def<{ pool: StoragePoolRef; flags?: number }, void>(
    'StoragePoolRefresh',
    Proc.STORAGE_POOL_REFRESH,
    (w, a) => writePool(w, a.pool).uint(a.flags ?? 0),
    none,
  ),
  storagePoolDefineXml: def<{ xml: string; flags?: number }, StoragePoolRef>(
    'StoragePoolDefineXML',
    Proc.STORAGE_POOL_DEFINE_XML,
    (w, a) => w.string(a.xml).uint(a.flags ?? 0),
    readPool,
  ),
  storagePoolCreateXml: def<{ xml: string; flags?: number }, StoragePoolRef>(
    'StoragePoolCreateXML',
    Proc.STORAGE_POOL_CREATE_XML,
    (w, a) => w.string(a.xml).uint(a.flags ?? 0),
    readPool,
  ),
  storagePoolBuild: def<{ pool: StoragePoolRef; flags?: number }, void>(
    'StoragePoolBuild',
    Proc.STORAGE_POOL_BUILD,
    (w, a) => writePool(w, a.pool).uint(a.flags ?? 0),
    none,
  ),
  storagePoolCreate: def<{ pool: StoragePoolRef; flags?: number }, void>(
    'StoragePoolCreate',
    Proc.STORAGE_POOL_CREATE,
    (w, a) => writePool(w, a.pool).uint(a.flags ?? 0),
    none,
  ),
  storagePoolDestroy: def<StoragePoolRef, void>(
    'StoragePoolDestroy',
    Proc.STORAGE_POOL_DESTROY,
    writePool,
    none,
  ),
  storagePoolUndefine: def<StoragePoolRef, void>(
    'StoragePoolUndefine',
    Proc.STORAGE_POOL_UNDEFINE,
    writePool,
    none,
  ),
  storagePoolSetAutostart: def<{ pool: StoragePoolRef; autostart: boolean }, void>(
    'StoragePoolSetAutostart',
    Proc.STORAGE_POOL_SET_AUTOSTART,
    (w, a) => writePool(w, a.pool).int(a.autostart ? 1 : 0),
    none,
  ),
  storagePoolListAllVolumes: def<{ pool: StoragePoolRef; flags?: number }, StorageVolRef[]>(
    'StoragePoolListAllVolumes',
    Proc.STORAGE_POOL_LIST_ALL_VOLUMES,
    (w, a) =>
      writePool(w, a.pool)
        .int(1)
        .uint(a.flags ?? 0),
    (r) => {
      const vols = r.array(Limits.STORAGE_VOL_LIST, readVol);
      r.uint();
      return vols;
    },
  ),
  storageVolLookupByName: def<{ pool: StoragePoolRef; name: string }, StorageVolRef>(
    'StorageVolLookupByName',
    Proc.STORAGE_VOL_LOOKUP_BY_NAME,
    (w, a) => writePool(w, a.pool).string(a.name),
    readVol,
  ),
  storageVolCreateXml: def<{ pool: StoragePoolRef; xml: string; flags?: number }, StorageVolRef>(
    'StorageVolCreateXML',
    Proc.STORAGE_VOL_CREATE_XML,
    (w, a) =>
      writePool(w, a.pool)
        .string(a.xml)
        .uint(a.flags ?? 0),
    readVol,
  ),
  storageVolDelete: def<{ vol: StorageVolRef; flags?: number }, void>(
    'StorageVolDelete',
    Proc.STORAGE_VOL_DELETE,
    (w, a) => writeVol(w, a.vol).uint(a.flags ?? 0),
    none,
  ),
  storageVolGetInfo: def<StorageVolRef, StorageVolInfoRet>(
    'StorageVolGetInfo',
    Proc.STORAGE_VOL_GET_INFO,
    writeVol,
    (r) => ({ type: r.int(), capacity: r.uhyper(), allocation: r.uhyper() }),
  ),
  storageVolGetPath: def<StorageVolRef, string>(
    'StorageVolGetPath',
    Proc.STORAGE_VOL_GET_PATH,
    writeVol,
    string,
  ),
  storageVolGetXmlDesc: def<{ vol: StorageVolRef; flags?: number }, string>(
    'StorageVolGetXMLDesc',
    Proc.STORAGE_VOL_GET_XML_DESC,
    (w, a) => writeVol(w, a.vol).uint(a.flags ?? 0),
    string,
  ),

  connectListAllInterfaces: def<{ flags?: number } | undefined, Array<{ name: string; mac: string }>>(
    'ConnectListAllInterfaces',
    Proc.CONNECT_LIST_ALL_INTERFACES,
    (w, a) => w.int(1).uint(a?.flags ?? 0),
    (r) => {
      const ifaces = r.array(Limits.INTERFACE_LIST, (x) => ({ name: x.string(), mac: x.string() }));
      r.uint();
      return ifaces;
    },
  ),

  secretDefineXml: def<{ xml: string; flags?: number }, SecretRef>(
    'SecretDefineXML',
    Proc.SECRET_DEFINE_XML,
    (w, a) => w.string(a.xml).uint(a.flags ?? 0),
    readSecret,
  ),
  secretLookupByUuid: def<string, SecretRef>(
    'SecretLookupByUUID',
    Proc.SECRET_LOOKUP_BY_UUID,
    (w, uuid) => w.uuid(uuid),
    readSecret,
  ),
  secretLookupByUsage: def<{ usageType: number; usageId: string }, SecretRef>(
    'SecretLookupByUsage',
    Proc.SECRET_LOOKUP_BY_USAGE,
    (w, a) => w.int(a.usageType).string(a.usageId),
    readSecret,
  ),
  secretSetValue: def<{ secret: SecretRef; value: Uint8Array; flags?: number }, void>(
    'SecretSetValue',
    Proc.SECRET_SET_VALUE,
    (w, a) =>
      writeSecret(w, a.secret)
        .opaque(a.value, Limits.SECRET_VALUE)
        .uint(a.flags ?? 0),
    none,
  ),
  secretUndefine: def<SecretRef, void>('SecretUndefine', Proc.SECRET_UNDEFINE, writeSecret, none),

  connectDomainEventCallbackRegisterAny: def<{ eventId: number; dom?: DomainRef | null }, number>(
    'ConnectDomainEventCallbackRegisterAny',
    Proc.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY,
    (w, a) => w.int(a.eventId).optional(a.dom, writeDomain),
    int,
  ),
  connectDomainEventCallbackDeregisterAny: def<number, void>(
    'ConnectDomainEventCallbackDeregisterAny',
    Proc.CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY,
    (w, id) => w.int(id),
    none,
  ),
} as const;

/** A domain event libvirt pushed (a VIR_NET_MESSAGE of the remote program), with the callback it is for. */
export type DomainEvent =
  | {
      kind: 'lifecycle';
      callbackId: number;
      domain: DomainRef;
      /** `virDomainEventType` and its name (started, suspended, …). */
      event: number;
      eventName: string;
      detail: number;
    }
  | { kind: 'reboot'; callbackId: number; domain: DomainRef }
  | { kind: 'migration-iteration'; callbackId: number; domain: DomainRef; iteration: number }
  | { kind: 'job-completed'; callbackId: number; domain: DomainRef; params: TypedParam[] };

/** Which event each registered event id delivers, by the procedure of its message. */
export const EVENT_PROC_BY_ID: Record<number, number> = {
  [DomainEventId.LIFECYCLE]: Proc.DOMAIN_EVENT_CALLBACK_LIFECYCLE,
  [DomainEventId.REBOOT]: Proc.DOMAIN_EVENT_CALLBACK_REBOOT,
  [DomainEventId.MIGRATION_ITERATION]: Proc.DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION,
  [DomainEventId.JOB_COMPLETED]: Proc.DOMAIN_EVENT_CALLBACK_JOB_COMPLETED,
};

/** Decodes an event message body; null for a procedure this client does not know (the caller counts it). */
export function decodeDomainEvent(procedure: number, body: Uint8Array): DomainEvent | null {
  const r = new XdrReader(body);
  let event: DomainEvent;
  switch (procedure) {
    case Proc.DOMAIN_EVENT_CALLBACK_LIFECYCLE: {
      const callbackId = r.int();
      const domain = readDomain(r);
      const ev = r.int();
      event = {
        kind: 'lifecycle',
        callbackId,
        domain,
        event: ev,
        eventName: LifecycleEvent[ev] ?? `event ${ev}`,
        detail: r.int(),
      };
      break;
    }
    case Proc.DOMAIN_EVENT_CALLBACK_REBOOT:
      event = { kind: 'reboot', callbackId: r.int(), domain: readDomain(r) };
      break;
    case Proc.DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION:
      event = { kind: 'migration-iteration', callbackId: r.int(), domain: readDomain(r), iteration: r.int() };
      break;
    case Proc.DOMAIN_EVENT_CALLBACK_JOB_COMPLETED:
      event = {
        kind: 'job-completed',
        callbackId: r.int(),
        domain: readDomain(r),
        params: r.typedParams(Limits.JOB_STATS),
      };
      break;
    default:
      return null;
  }
  r.end();
  return event;
}

/** Encodes a call's arguments (a fresh buffer). */
export function encodeArgs<A>(p: Procedure<A, unknown>, args: A): Buffer {
  const w = new XdrWriter();
  p.encode(w, args);
  return Buffer.from(w.bytes());
}

/** Decodes a call's reply body, requiring it to be consumed exactly. */
export function decodeRet<R>(p: Procedure<unknown, R>, body: Uint8Array): R {
  const r = new XdrReader(body);
  const v = p.decode(r);
  r.end();
  return v;
}
