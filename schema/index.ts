import type { ColumnType, Generated, Migration } from 'kysely';
import * as core from './2026-11-23T00-core.js';

/**
 * Every migration, in order. Names are frozen once released; append new ones at the end.
 * (A static list, not a folder scan, so the same code runs from TypeScript sources and from dist/.)
 */
export const migrations: Record<string, Migration> = {
  '2026-11-23T00-core': core,
};

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
type Json<T = unknown> = ColumnType<T, string | T | undefined, string | T>;
/** int8 columns: pg returns them as strings unless parsed; lib/db.ts parses them as numbers. */
type Int8 = ColumnType<number, number | bigint | string, number | bigint | string>;

export interface UsersTable {
  id: Generated<number>;
  username: string;
  source: ColumnType<'local' | 'ldap', 'local' | 'ldap' | undefined>;
  password_hash: string | null;
  display_name: string | null;
  email: string | null;
  is_super_admin: Generated<boolean>;
  disabled: Generated<boolean>;
  created_at: Generated<Timestamp>;
}

export interface SessionsTable {
  id: Generated<number>;
  user_id: number;
  token_hash: string;
  kind: 'session' | 'token';
  name: string | null;
  csrf_token: string | null;
  created_at: Generated<Timestamp>;
  expires_at: Timestamp;
  revoked_at: NullableTimestamp;
  last_used_at: NullableTimestamp;
}

export type QuotaPolicy = 'alert' | 'block' | 'suspend-newest';
export type PlacementPolicy = 'pack' | 'spread' | 'load';

export interface PoolsTable {
  id: Generated<number>;
  name: string;
  kind: 'hardware' | 'vm';
  parent_id: number | null;
  quota_policy: ColumnType<QuotaPolicy, QuotaPolicy | undefined>;
  quota_grace_seconds: Generated<number>;
  placement_policy: PlacementPolicy | null;
  cpu_allocation_ratio: number | null;
  ram_allocation_ratio: number | null;
  created_at: Generated<Timestamp>;
}

export interface SmartPoolsTable {
  id: Generated<number>;
  user_id: number;
  name: string;
  created_at: Generated<Timestamp>;
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
  granted_at: Generated<Timestamp>;
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
  created_at: Generated<Timestamp>;
}

export interface StoragePoolsTable {
  id: Generated<number>;
  pool_id: number;
  host_id: number | null;
  type: 'iscsi' | 'nfs' | 'lvm' | 'libvirt';
  name: string;
  params: Json<Record<string, unknown>>;
  created_at: Generated<Timestamp>;
}

export interface ImagesTable {
  id: Generated<number>;
  name: string;
  kernel: string | null;
  initrd: string | null;
  cmdline: string | null;
  ipxe_url: string | null;
  iso_volume_id: number | null;
  created_at: Generated<Timestamp>;
}

export interface VmsTable {
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
  started_at: NullableTimestamp;
  state_changed_at: Generated<Timestamp>;
  created_at: Generated<Timestamp>;
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
  created_at: Generated<Timestamp>;
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
  created_at: Generated<Timestamp>;
  started_at: NullableTimestamp;
  finished_at: NullableTimestamp;
}

export interface AuditLogTable {
  id: Generated<Int8>;
  at: Generated<Timestamp>;
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
  received_at: Generated<Timestamp>;
  host: string;
  plugin: ColumnType<string, string | undefined, string>;
  plugin_instance: ColumnType<string, string | undefined, string>;
  type: ColumnType<string, string | undefined, string>;
  type_instance: ColumnType<string, string | undefined, string>;
  severity: string;
  message: ColumnType<string, string | undefined, string>;
}

/** The database, declared once. Later migrations add their tables here. */
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
  audit_log: AuditLogTable;
  events: EventsTable;
}
