/**
 * The small interface the rest of herd uses to act on a libvirt host. Its implementation (rpc-driver.ts) speaks
 * libvirt's RPC protocol through herd's own client (`libvirt/`): one connection per host.
 */

/** What an operator sets per host (and a VM may override with `kvm` or `qemu`). */
export type VirtTypeSetting = 'auto' | 'kvm' | 'qemu';

/** What herd reads of a host's libvirt capabilities to choose a virtualization type. */
export interface VirtSupport {
  /** The domain types libvirt offers for guests (`kvm`, `qemu`, `test`, …). */
  domainTypes: string[];
  /** The host CPU's hardware virtualization features libvirt reports (`vmx`, `svm`). */
  cpuVirtFeatures: string[];
}

export interface HostInventory {
  hostname: string;
  uuid: string | null;
  arch: string | null;
  cpus: number;
  cores: number | null;
  mhz: number | null;
  memoryMiB: number;
  nics: Array<{ name: string; mac?: string }>;
  /** What the host offers for virtualization (from its capabilities); absent when unread. */
  virt?: VirtSupport;
}

/** Domain states as libvirt reports them, mapped to herd's VM states where they are stable. */
export type DomainState = 'running' | 'paused' | 'shutoff' | 'crashed' | 'saved' | 'unknown';

export interface DomainInfo {
  uuid: string;
  name: string;
  state: DomainState;
  vcpus: number;
  memoryMiB: number;
}

export interface DomainSpec {
  uuid: string;
  name: string;
  vcpus: number;
  memoryMiB: number;
  /** `iscsi`: a LUN qemu reaches itself (libiscsi), a network disk; `path` then only names it. */
  disks: Array<{ path: string; device?: 'disk' | 'cdrom'; iscsi?: IscsiDiskSource }>;
  /**
   * `bootUrl`: the NIC (on qemu's user network) network-boots from this URL, which qemu's DHCP hands out as the
   * boot file name to the NIC's iPXE ROM (a network install; see domain-xml.ts).
   */
  nics: Array<{ mac: string; network: string; bootUrl?: string }>;
  /** Boot order, first entry first: 'network' for PXE installs, then 'hd', 'cdrom'. */
  boot: Array<'network' | 'hd' | 'cdrom'>;
  /** Direct Linux boot from files on the host, instead of the boot order. */
  linuxBoot?: { kernel: string; initrd?: string; cmdline?: string };
  /** CPU hard limit: share (1–100 %) of one host CPU each vCPU may use (`<cputune>` quota/period). */
  cpuLimitPercent?: number;
  /** The VM's override or else its host's setting (default `auto`): see virt-type.ts. */
  virtType?: VirtTypeSetting;
  /** Network and disk limits of every NIC (`<bandwidth>`) and disk (`<iotune>`); a limit left out: none. */
  ioLimits?: IoLimits;
}

/**
 * Network limits of each NIC (libvirt `<bandwidth>`, inbound and outbound as the guest sees them: average and
 * peak in KiB/s, burst in KiB; a peak or burst needs its average) and disk limits of each disk (libvirt
 * `<iotune>`). A limit left out: none.
 */
export interface IoLimits {
  netInboundKiBps?: number;
  netInboundPeakKiBps?: number;
  netInboundBurstKiB?: number;
  netOutboundKiBps?: number;
  netOutboundPeakKiBps?: number;
  netOutboundBurstKiB?: number;
  diskReadBytesPerSec?: number;
  diskWriteBytesPerSec?: number;
  diskReadIops?: number;
  diskWriteIops?: number;
}

export interface StoragePoolInfo {
  name: string;
  type: string;
  capacityGiB: number;
  availableGiB: number;
  active: boolean;
}

/** A LUN of an iSCSI target as a guest disk (libvirt `<disk type='network'><source protocol='iscsi'>`). */
export interface IscsiDiskSource {
  portal: string;
  port: number;
  targetIqn: string;
  lun: number;
  /** The initiator name qemu logs in with. */
  initiatorIqn: string;
  /** CHAP: the user name and the usage id of the host's libvirt secret (usage `iscsi`) holding the secret. */
  chap?: { username: string; secretUsage: string };
}

/** What herd asks libvirt to define; `libvirt` pools are adopted as they are, never defined. */
export type StoragePoolDefinition =
  | {
      type: 'iscsi';
      name: string;
      portal: string;
      port: number;
      targetIqn: string;
      /** CHAP credentials: the secret becomes a private libvirt secret on the host, never written elsewhere. */
      chapUsername?: string;
      chapSecret?: string;
    }
  | { type: 'nfs'; name: string; server: string; export: string; mountPoint?: string }
  | { type: 'lvm'; name: string; volumeGroup: string };

export interface StorageVolumeInfo {
  name: string;
  path: string;
  sizeGiB: number;
}

/**
 * A domain's job while it runs (save, restore, migration), as libvirt reports it (`DomainGetJobStats`, what
 * `virsh domjobinfo --rawstats` prints): bytes of the domain's state processed so far out of the total libvirt
 * expects. The total can grow while a migration runs (memory the guest dirties again).
 */
export interface DomainJobInfo {
  /** libvirt's operation name: save, restore, outgoing migration, … */
  operation: string;
  dataProcessedBytes: number;
  dataTotalBytes: number;
  dataRemainingBytes: number;
}

/**
 * A domain event libvirt pushed (api/hosts/host-monitor.ts applies it to the one VM it names): lifecycle (started,
 * suspended, stopped, …, with `detail` its name), reboot, a job completed (save, migration), a migration iteration.
 */
export interface HostDomainEvent {
  kind: 'lifecycle' | 'reboot' | 'job-completed' | 'migration-iteration';
  uuid: string;
  name: string;
  /** For lifecycle events: libvirt's event name (started, suspended, resumed, stopped, …). */
  detail?: string;
}

export interface DomainEventCallbacks {
  onEvent(event: HostDomainEvent): void;
  /** The connection came back: events sent meanwhile were missed (re-subscribed already). */
  onReconnect?(): void;
}

/** An operation this host's libvirt driver cannot do (e.g. live migration on the test driver). */
export class UnsupportedByDriverError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsupportedByDriverError';
  }
}

export interface HostDriver {
  readonly uri: string;
  inventory(): Promise<HostInventory>;
  /** Cheap liveness check (the heartbeat needs none: its one domain-list call proves the connection). */
  ping(): Promise<void>;
  listDomains(): Promise<DomainInfo[]>;
  domain(uuid: string): Promise<DomainInfo | null>;
  define(spec: DomainSpec): Promise<void>;
  undefine(uuid: string): Promise<void>;
  start(uuid: string): Promise<void>;
  shutdown(uuid: string): Promise<void>;
  destroy(uuid: string): Promise<void>;
  suspend(uuid: string): Promise<void>;
  resume(uuid: string): Promise<void>;
  save(uuid: string, file: string): Promise<void>;
  restore(file: string): Promise<void>;
  /** Live, peer-to-peer migration; throws a clear error where the driver cannot do it. */
  migrateLive(uuid: string, destinationUri: string): Promise<void>;
  /** The job running on the domain now (save, restore, migration), or null when none or libvirt tells nothing. */
  jobInfo(uuid: string): Promise<DomainJobInfo | null>;
  /** Aborts the job running on the domain (a save, restore or migration), as `virsh domjobabort`. */
  abortJob(uuid: string): Promise<void>;
  domainXml(uuid: string): Promise<string>;
  /**
   * Sets (null: lifts) a domain's CPU hard limit (scheduler parameters vcpu_quota/vcpu_period, as `virsh
   * schedinfo` sets them) in its persistent definition and, while it runs, live. libvirt's test driver has no CPU scheduler: there only the next
   * definition carries it.
   */
  setCpuLimit(uuid: string, limitPercent: number | null): Promise<void>;
  /**
   * Sets a domain's network limits on each NIC that can be shaped (see domain-xml.ts) and its disk limits on
   * each disk (every limit of the kinds in `kinds`, default both: one left out is lifted), in its persistent
   * definition and, while it runs, live. libvirt's test driver shapes nothing: there only the next definition
   * carries them.
   */
  setIoLimits(uuid: string, limits: IoLimits, kinds?: ReadonlyArray<'net' | 'disk'>): Promise<void>;
  listStoragePools(): Promise<StoragePoolInfo[]>;
  /**
   * Defines (persistent, autostart), builds where needed and starts a storage pool (iSCSI: with its CHAP secret).
   * When a step fails, what it defined is undefined again before it throws.
   */
  defineStoragePool(definition: StoragePoolDefinition): Promise<void>;
  /**
   * Stops and undefines a pool herd defined, and its CHAP secret; what is already gone is skipped.
   */
  undefineStoragePool(definition: StoragePoolDefinition): Promise<void>;
  /** Starts the pool if inactive, then rescans its volumes (new LUNs, LVs made outside herd). */
  refreshStoragePool(pool: string): Promise<void>;
  listVolumes(pool: string): Promise<StorageVolumeInfo[]>;
  createVolume(pool: string, name: string, sizeGiB: number): Promise<StorageVolumeInfo>;
  deleteVolume(pool: string, name: string): Promise<void>;
  /**
   * Follows the host's domain events, pushed over the driver's connection and re-registered after a reconnect.
   * Answers the unsubscribe.
   */
  watchDomainEvents(handlers: DomainEventCallbacks): Promise<() => Promise<void>>;
  close(): Promise<void>;
}
