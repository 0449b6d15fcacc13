import type { ColumnType, Generated, Migration } from 'kysely';
import * as core from './2026-11-23T00-core.js';
import * as metrics from './2026-11-23T01-metrics.js';
import * as governance from './2026-11-23T10-governance.js';
import * as vmTasks from './2026-11-23T40-vm-tasks.js';
import * as metricRollups from './2026-11-23T50-metric-rollups.js';
import * as alerts from './2026-11-23T60-alerts.js';
import * as startClaim from './2026-11-23T70-start-claim.js';
import * as claimBatches from './2026-11-23T80-claim-batches.js';
import * as poolUsage from './2026-11-23T81-pool-usage.js';
import * as placementCache from './2026-11-24T00-placement-cache.js';
import * as imageOwners from './2026-11-24T01-image-owners.js';
import * as leanDecision from './2026-11-24T02-lean-decision.js';
import * as vmActionAudit from './2026-12-07T00-vm-action-audit.js';
import * as liveHosts from './2026-12-07T15-live-hosts.js';
import * as eventSubjects from './2026-12-07T16-event-subjects.js';
import * as vmLinuxBoot from './2026-12-07T21-vm-linux-boot.js';
import * as taskProgressDetail from './2026-12-07T22-task-progress-detail.js';
import * as cpuLimits from './2026-12-07T23-cpu-limits.js';
import * as pxeInstallToken from './2026-12-07T24-pxe-install-token.js';
import * as virtType from './2026-12-08T00-virt-type.js';
import * as balancer from './2026-12-08T01-balancer.js';
import * as ioLimits from './2026-12-08T03-io-limits.js';
import * as functionFiles from './2026-12-08T05-functions.js';
import * as taskCancel from './2026-12-08T06-task-cancel.js';

/**
 * Every migration, in order. Names are frozen once released; append new ones at the end.
 * (A static list, not a folder scan, so the same code runs from TypeScript sources and from dist/.)
 */
export const migrations: Record<string, Migration> = {
  '2026-11-23T00-core': core,
  '2026-11-23T01-metrics': metrics,
  '2026-11-23T10-governance': governance,
  '2026-11-23T40-vm-tasks': vmTasks,
  '2026-11-23T50-metric-rollups': metricRollups,
  '2026-11-23T60-alerts': alerts,
  '2026-11-23T70-start-claim': startClaim,
  '2026-11-23T80-claim-batches': claimBatches,
  '2026-11-23T81-pool-usage': poolUsage,
  '2026-11-24T00-placement-cache': placementCache,
  '2026-11-24T01-image-owners': imageOwners,
  '2026-11-24T02-lean-decision': leanDecision,
  '2026-12-07T00-vm-action-audit': vmActionAudit,
  '2026-12-07T15-live-hosts': liveHosts,
  '2026-12-07T16-event-subjects': eventSubjects,
  '2026-12-07T21-vm-linux-boot': vmLinuxBoot,
  '2026-12-07T22-task-progress-detail': taskProgressDetail,
  '2026-12-07T23-cpu-limits': cpuLimits,
  '2026-12-07T24-pxe-install-token': pxeInstallToken,
  '2026-12-08T00-virt-type': virtType,
  '2026-12-08T01-balancer': balancer,
  '2026-12-08T03-io-limits': ioLimits,
  '2026-12-08T05-functions': functionFiles,
  '2026-12-08T06-task-cancel': taskCancel,
};

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
/** A timestamp with a database default (`Generated<Timestamp>` would select as the ColumnType itself). */
type GeneratedTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
type Json<T = unknown> = ColumnType<T, string | T | undefined, string | T>;
/** int8 columns: pg returns them as strings unless parsed; schema/db.ts parses them as numbers. */
type Int8 = ColumnType<number, number | bigint | string, number | bigint | string>;
type NullableLimit = ColumnType<number | null, number | null | undefined, number | null>;

/**
 * Network and disk limits of a VM, and of a VM pool for its VMs (migration 2026-12-08T03; see api/vms/limits.ts).
 * NICs: KiB/s and KiB; disks: bytes/s and operations/s. Null: none.
 */
export interface IoLimitColumns {
  net_inbound_kibps: NullableLimit;
  net_inbound_peak_kibps: NullableLimit;
  net_inbound_burst_kib: NullableLimit;
  net_outbound_kibps: NullableLimit;
  net_outbound_peak_kibps: NullableLimit;
  net_outbound_burst_kib: NullableLimit;
  disk_read_bytes_sec: NullableLimit;
  disk_write_bytes_sec: NullableLimit;
  disk_read_iops: NullableLimit;
  disk_write_iops: NullableLimit;
}

export interface UsersTable {
  id: Generated<number>;
  username: string;
  source: ColumnType<'local' | 'ldap', 'local' | 'ldap' | undefined>;
  password_hash: string | null;
  display_name: string | null;
  email: string | null;
  is_super_admin: Generated<boolean>;
  disabled: Generated<boolean>;
  created_at: GeneratedTimestamp;
  /** Directory entry of an LDAP user (migration T10). */
  ldap_dn: string | null;
}

export interface SessionsTable {
  id: Generated<number>;
  user_id: number;
  token_hash: string;
  kind: 'session' | 'token';
  name: string | null;
  csrf_token: string | null;
  created_at: GeneratedTimestamp;
  expires_at: Timestamp;
  revoked_at: NullableTimestamp;
  last_used_at: NullableTimestamp;
}

export type QuotaPolicy = 'alert' | 'block' | 'suspend-newest';
export type PlacementPolicy = 'pack' | 'spread' | 'load';

export interface PoolsTable extends IoLimitColumns {
  id: Generated<number>;
  name: string;
  kind: 'hardware' | 'vm';
  parent_id: number | null;
  quota_policy: ColumnType<QuotaPolicy, QuotaPolicy | undefined>;
  quota_grace_seconds: Generated<number>;
  placement_policy: PlacementPolicy | null;
  cpu_allocation_ratio: number | null;
  ram_allocation_ratio: number | null;
  /** VM pools: CPU hard limit (% of each vCPU) its VMs get at most (migration 2026-12-07T23). */
  cpu_limit_percent: ColumnType<number | null, number | null | undefined, number | null>;
  /** Hardware pools: the balancer's settings (api/balancer/settings.ts), NULL: the defaults (migration 2026-12-08T01). */
  balancer: ColumnType<Json | null, string | null | undefined, string | null>;
  created_at: GeneratedTimestamp;
}

export interface SmartPoolsTable {
  id: Generated<number>;
  user_id: number;
  name: string;
  created_at: GeneratedTimestamp;
}

export interface SmartPoolMembersTable {
  smart_pool_id: number;
  entity_type: 'pool' | 'host' | 'storage_pool' | 'vm';
  entity_id: number;
}

export type Role = 'admin' | 'user' | 'monitor';

export interface PermissionsTable {
  pool_id: number;
  user_id: number;
  role: Role;
  granted_at: GeneratedTimestamp;
  /** `ldap`: made by the group mapping at login, replaced at each login (migration T10). */
  source: ColumnType<'manual' | 'ldap', 'manual' | 'ldap' | undefined>;
}

export interface QuotasTable {
  id: Generated<number>;
  pool_id: number;
  user_id: number | null;
  vcpus: number | null;
  memory_mib: Int8 | null;
  storage_gib: number | null;
  nics: number | null;
  vms: number | null;
}

export type HostState = 'unknown' | 'up' | 'unreachable' | 'down';

export interface HostsTable {
  id: Generated<number>;
  pool_id: number;
  uri: string;
  hostname: string;
  uuid: string | null;
  arch: string | null;
  cpus: Generated<number>;
  cores: number | null;
  mhz: number | null;
  memory_mib: ColumnType<number, number | undefined, number>;
  nics: Json<unknown[]>;
  enabled: Generated<boolean>;
  state: ColumnType<HostState, HostState | undefined, HostState>;
  last_seen_at: NullableTimestamp;
  heartbeat_at: NullableTimestamp;
  heartbeat_error: string | null;
  reserved_vcpus: Generated<number>;
  reserved_memory_mib: ColumnType<number, number | undefined, number>;
  cpu_allocation_ratio: number | null;
  ram_allocation_ratio: number | null;
  created_at: GeneratedTimestamp;
  /** Bumped by a trigger whenever what placement reads of the host changes (migration T80). */
  inventory_version: Generated<number>;
  /** `auto`, `kvm` or `qemu` (migration 2026-12-08T00). */
  virt_type: ColumnType<VirtTypeSetting, VirtTypeSetting | undefined, VirtTypeSetting>;
  /** The domain types libvirt offers on the host (capabilities); NULL until read. */
  virt_domain_types: string[] | null;
  /** The host CPU's virtualization features (vmx, svm) from libvirt's capabilities; NULL until read. */
  cpu_virt_features: string[] | null;
}

export type VirtTypeSetting = 'auto' | 'kvm' | 'qemu';

export interface StoragePoolsTable {
  id: Generated<number>;
  pool_id: number;
  host_id: number | null;
  type: 'iscsi' | 'nfs' | 'lvm' | 'libvirt';
  name: string;
  params: Json<Record<string, unknown>>;
  created_at: GeneratedTimestamp;
}

export interface ImagesTable {
  id: Generated<number>;
  name: string;
  kernel: string | null;
  initrd: string | null;
  cmdline: string | null;
  ipxe_url: string | null;
  iso_volume_id: number | null;
  created_at: GeneratedTimestamp;
  /** Who added it (migration 2026-11-24T01); NULL for images older than that or whose user was deleted. */
  created_by: number | null;
}

export interface VmsTable extends IoLimitColumns {
  id: Generated<number>;
  uuid: string;
  name: string;
  pool_id: number;
  owner_id: number;
  vcpus: number;
  memory_mib: Int8;
  host_id: number | null;
  state: ColumnType<string, string | undefined, string>;
  image_id: number | null;
  boot_network: Generated<boolean>;
  /** Direct Linux boot: kernel, initrd and command line on the host (migration 2026-12-07T21). */
  boot_kernel: ColumnType<string | null, string | null | undefined, string | null>;
  boot_initrd: ColumnType<string | null, string | null | undefined, string | null>;
  boot_cmdline: ColumnType<string | null, string | null | undefined, string | null>;
  /** The secret of the VM's `POST /pxe/installed/<token>` while a network install may report (migration 2026-12-07T24). */
  install_token: ColumnType<string | null, string | null | undefined, string | null>;
  /** CPU hard limit, % of each vCPU; the pool's may be lower (migration 2026-12-07T23). */
  cpu_limit_percent: ColumnType<number | null, number | null | undefined, number | null>;
  /** `kvm` or `qemu` overriding the host's setting; NULL: the host's (migration 2026-12-08T00). */
  virt_type: ColumnType<'kvm' | 'qemu' | null, 'kvm' | 'qemu' | null | undefined, 'kvm' | 'qemu' | null>;
  /** Never moved by the balancer (migration 2026-12-08T01). */
  pinned: Generated<boolean>;
  started_at: NullableTimestamp;
  state_changed_at: GeneratedTimestamp;
  created_at: GeneratedTimestamp;
  /** While migrating: the destination, which holds room for the VM too (migration T40). */
  migration_host_id: number | null;
  /** The task acting on the VM now, if any (migration T40). */
  task_id: number | null;
  /** Where the saved image of a `saved` VM is (migration T40). */
  save_path: string | null;
  /** The last placement decision, to explain it (migration T40). */
  placement: Json | null;
  /** Its NICs and the size of its attached volumes, kept by triggers (migration T81). */
  nic_count: Generated<number>;
  storage_gib: Generated<number>;
}

export interface VmNicsTable {
  id: Generated<number>;
  vm_id: number;
  mac: string;
  network: ColumnType<string, string | undefined, string>;
}

export interface VolumesTable {
  id: Generated<number>;
  storage_pool_id: number;
  name: string;
  path: string | null;
  size_gib: ColumnType<number, number | undefined, number>;
  vm_id: number | null;
  created_at: GeneratedTimestamp;
}

/** What the active VMs on a host hold, kept by triggers on vms (migration T40). */
export interface HostAllocationsTable {
  host_id: number;
  vcpus: Int8;
  memory_mib: Int8;
}

/** A pool's stamp, new with every change to its hosts as placement sees them (migration 2026-11-24T02). */
export interface PoolHostStampsTable {
  pool_id: number;
  stamp: Int8;
}

/** What the VMs of a pool (not its subtree) hold per owner, kept by triggers (migration T81). */
export interface PoolUsageTable {
  pool_id: number;
  owner_id: number;
  /** Its VMs in any state. */
  vms_defined: number;
  vcpus: Int8;
  memory_mib: Int8;
  vms: number;
  nics: Int8;
  storage_gib: number;
}

export type TaskState = 'queued' | 'running' | 'done' | 'failed' | 'cancelled';

export interface TasksTable {
  id: Generated<number>;
  user_id: number | null;
  action: string;
  target_type: string;
  target_id: number;
  args: Json<Record<string, unknown>>;
  state: ColumnType<TaskState, TaskState | undefined, TaskState>;
  progress: number | null;
  error: string | null;
  created_at: GeneratedTimestamp;
  started_at: NullableTimestamp;
  finished_at: NullableTimestamp;
  /** The pool of the task's target, for lists and access (migration T40). */
  pool_id: number | null;
  /** The worker running it and its last sign of life: a stale heartbeat means a dead worker (migration T40). */
  worker_id: string | null;
  heartbeat_at: NullableTimestamp;
  result: Json | null;
  /** What `progress` was measured from, when the host reports it (libvirt's job info; migration 2026-12-07T22). */
  progress_detail: Json<Record<string, unknown>> | null;
  /** When a cancel of the running task was asked (migration 2026-12-08T06); its worker aborts libvirt's job. */
  cancel_requested_at: NullableTimestamp;
}

export interface AuditLogTable {
  id: Generated<Int8>;
  at: GeneratedTimestamp;
  user_id: number | null;
  action: string;
  entity_type: string;
  entity_id: string | null;
  before: Json | null;
  after: Json | null;
}

export interface EventsTable {
  id: Generated<Int8>;
  time: Timestamp;
  received_at: GeneratedTimestamp;
  host: string;
  plugin: ColumnType<string, string | undefined, string>;
  plugin_instance: ColumnType<string, string | undefined, string>;
  type: ColumnType<string, string | undefined, string>;
  type_instance: ColumnType<string, string | undefined, string>;
  severity: string;
  message: ColumnType<string, string | undefined, string>;
  /** The host and VM the notification is about, set on insert by a trigger (migration 2026-12-07T16). */
  host_id: ColumnType<number | null, number | null | undefined, number | null>;
  vm_id: ColumnType<number | null, number | null | undefined, number | null>;
}

/** One field of one measurement + tag set (PostgreSQL metrics store). */
export interface MetricSeriesTable {
  id: Generated<number>;
  measurement: string;
  field: string;
  tags: Json<Record<string, string>>;
}

export interface MetricPointsTable {
  series_id: number;
  time: Timestamp;
  value: number;
}

/** Mean and max of a metric series per rollup bucket (migration T50). */
export interface MetricRollupsTable {
  series_id: number;
  bucket: Timestamp;
  mean: number;
  max: number;
}

export interface MetricRollupProgressTable {
  step_seconds: number;
  done_until: Timestamp;
}

export type AlertSeverity = 'info' | 'warning' | 'critical';
export type AlertState = 'ok' | 'pending' | 'firing' | 'nodata' | 'error';
export type NodataPolicy = 'nodata' | 'ok' | 'alerting' | 'keep';
export type ErrorPolicy = 'error' | 'ok' | 'alerting' | 'keep';

export interface NotificationChannelsTable {
  id: Generated<number>;
  name: string;
  type: 'webhook' | 'email';
  pool_id: number | null;
  config: Json<Record<string, unknown>>;
  secret: string | null;
  min_severity: ColumnType<AlertSeverity, AlertSeverity | undefined, AlertSeverity>;
  send_resolved: Generated<boolean>;
  enabled: Generated<boolean>;
  created_by: number | null;
  created_at: GeneratedTimestamp;
}

export interface AlertRulesTable {
  id: Generated<number>;
  builtin: string | null;
  name: string;
  description: ColumnType<string, string | undefined, string>;
  enabled: Generated<boolean>;
  scope: 'global' | 'pool' | 'host';
  pool_id: number | null;
  host_id: number | null;
  aggregate: 'mean' | 'max' | 'min' | 'sum' | null;
  metric: Json<Record<string, unknown>>;
  condition: 'above' | 'below' | 'absent';
  threshold: number | null;
  window_seconds: Generated<number>;
  window_function: ColumnType<'last' | 'mean' | 'max' | 'min', 'last' | 'mean' | 'max' | 'min' | undefined>;
  pending_seconds: Generated<number>;
  keep_firing_seconds: Generated<number>;
  nodata_policy: ColumnType<NodataPolicy, NodataPolicy | undefined>;
  error_policy: ColumnType<ErrorPolicy, ErrorPolicy | undefined>;
  severity: ColumnType<AlertSeverity, AlertSeverity | undefined, AlertSeverity>;
  labels: Json<Record<string, string>>;
  group_wait_seconds: Generated<number>;
  repeat_interval_seconds: Generated<number>;
  channel_ids: number[] | null;
  created_by: number | null;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

export interface AlertInstancesTable {
  id: Generated<number>;
  rule_id: number;
  subject: string;
  pool_id: number | null;
  host_id: number | null;
  labels: Json<Record<string, string>>;
  state: AlertState;
  version: Generated<number>;
  value: number | null;
  error: string | null;
  active_since: NullableTimestamp;
  firing_since: NullableTimestamp;
  last_breach_at: NullableTimestamp;
  resolved_at: NullableTimestamp;
  last_notified_at: NullableTimestamp;
  last_evaluated_at: NullableTimestamp;
  state_changed_at: Timestamp;
}

export interface SilencesTable {
  id: Generated<number>;
  pool_id: number | null;
  matchers: Json<Array<{ name: string; value: string; op: '=' | '!=' | '=~' | '!~' }>>;
  starts_at: Timestamp;
  ends_at: Timestamp;
  comment: string;
  created_by: number | null;
  created_at: GeneratedTimestamp;
  updated_at: GeneratedTimestamp;
}

export type NotificationStatus = 'grouping' | 'sending' | 'retrying' | 'delivered' | 'failed' | 'silenced';

export interface NotificationsTable {
  id: Generated<number>;
  channel_id: number;
  rule_id: number | null;
  pool_id: number | null;
  group_key: string;
  status: NotificationStatus;
  alerts: Json<unknown[]>;
  payload: Json<Record<string, unknown>> | null;
  created_at: Timestamp;
  not_before: Timestamp;
  locked_until: NullableTimestamp;
  attempts: Generated<number>;
  last_error: string | null;
  delivered_at: NullableTimestamp;
  history: Json<unknown[]>;
}

export type EnforcementAction = 'none' | 'alert' | 'block' | 'suspend';

export interface QuotaEnforcementTable {
  pool_id: number;
  user_id: number | null;
  over: Json<Record<string, { used: number; limit: number }>>;
  over_since: Timestamp;
  policy: QuotaPolicy;
  action: ColumnType<EnforcementAction, EnforcementAction | undefined>;
  blocked: Generated<boolean>;
  reason: string;
  checked_at: Timestamp;
}

export interface QuotaEnforcementLogTable {
  id: Generated<number>;
  at: Timestamp;
  pool_id: number;
  user_id: number | null;
  action: 'over' | 'alert' | 'block' | 'unblock' | 'suspend' | 'resolved' | 'skipped';
  vm_id: number | null;
  task_id: number | null;
  reason: string;
  details: Json<Record<string, unknown>>;
}

/** The database, declared once. Later migrations add their tables here. */
/** One host's live summary as the ingest process receiving it last published it (migration 2026-12-07T15). */
export interface LiveHostSummariesTable {
  hostname: string;
  last_seen: Timestamp;
  interval_seconds: number;
  load1: number | null;
  load5: number | null;
  load15: number | null;
  memory_free_mib: number | null;
  memory_used_mib: number | null;
  cpu_busy_percent: number | null;
  cpu_count: number | null;
  /** `<machine>:<pid>` of the publishing process. */
  publisher: string;
  /** The database's clock at the upsert. */
  published_at: GeneratedTimestamp;
}

export interface DB {
  users: UsersTable;
  sessions: SessionsTable;
  pools: PoolsTable;
  smart_pools: SmartPoolsTable;
  smart_pool_members: SmartPoolMembersTable;
  permissions: PermissionsTable;
  quotas: QuotasTable;
  hosts: HostsTable;
  storage_pools: StoragePoolsTable;
  images: ImagesTable;
  vms: VmsTable;
  vm_nics: VmNicsTable;
  volumes: VolumesTable;
  tasks: TasksTable;
  host_allocations: HostAllocationsTable;
  pool_host_stamps: PoolHostStampsTable;
  pool_usage: PoolUsageTable;
  audit_log: AuditLogTable;
  events: EventsTable;
  metric_series: MetricSeriesTable;
  metric_points: MetricPointsTable;
  metric_rollups: MetricRollupsTable;
  metric_rollup_progress: MetricRollupProgressTable;
  notification_channels: NotificationChannelsTable;
  alert_rules: AlertRulesTable;
  alert_instances: AlertInstancesTable;
  silences: SilencesTable;
  notifications: NotificationsTable;
  quota_enforcement: QuotaEnforcementTable;
  quota_enforcement_log: QuotaEnforcementLogTable;
  live_host_summaries: LiveHostSummariesTable;
  balancer_host_samples: BalancerHostSamplesTable;
}

/** Hosts' CPU and memory as the balancer sampled them from the live view (migration 2026-12-08T01). */
export interface BalancerHostSamplesTable {
  host_id: number;
  at: Timestamp;
  cpu_percent: number;
  memory_used_mib: number | null;
}
