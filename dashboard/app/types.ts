import type { V1AlertsListData, V1EventsListData, V1MeListData, V1TasksDetailData } from './generated/api.js';

/**
 * The API's shapes, as far as the dashboard reads them. Those whose route schemas say which fields are always sent
 * come from the types `npm run build` generates from the OpenAPI document (generated/api.ts,
 * dashboard/server/api-types.ts); the others are still written here.
 */
export type Role = 'super' | 'admin' | 'user' | 'monitor';

/** `GET /api/v1/me`. */
export type Me = V1MeListData;

export interface Pool {
  id: number;
  name: string;
  kind: 'hardware' | 'vm';
  parentId: number | null;
  role: Role | null;
}

export interface HostLiveFigures {
  lastSeen?: number;
  cpu?: number | null;
  load1?: number | null;
  memoryUsedMiB?: number | null;
  memoryFreeMiB?: number | null;
}

export interface Host {
  id: number;
  poolId: number;
  uri: string;
  hostname: string;
  uuid?: string | null;
  arch?: string | null;
  cpus: number;
  cores?: number | null;
  mhz?: number | null;
  memoryMiB: number;
  nics?: Array<{ name: string; mac?: string }>;
  enabled: boolean;
  state: string;
  lastSeen?: string | null;
  heartbeatAt?: string | null;
  heartbeatError?: string | null;
  live?: { cpuBusyPercent?: number; load1?: number; memoryUsedMiB?: number; memoryFreeMiB?: number } | null;
  vms?: Array<{ id: number; name: string; state: string }>;
  virtType: 'auto' | 'kvm' | 'qemu';
  effectiveVirtType: 'kvm' | 'qemu' | 'test' | null;
  virtTypeReason: string;
}

export interface Vm {
  id: number;
  uuid?: string;
  name: string;
  poolId: number;
  ownerId: number;
  state: string;
  hostId: number | null;
  vcpus: number;
  memoryMiB: number;
  /** CPU hard limit, % of each vCPU: the VM's own, and the one applied (the lower of its own and its pool's). */
  cpuLimitPercent?: number | null;
  effectiveCpuLimitPercent?: number | null;
  volumes?: Array<{
    id: number;
    name: string;
    sizeGiB: number;
    path?: string | null;
    storagePoolId?: number;
  }>;
  nics?: Array<{ mac: string; network: string }>;
  image?: { id: number; name: string; kind: string } | null;
  taskId?: number | null;
  stateChangedAt?: string;
}

export interface VmLiveFigures {
  cpu?: number | null;
  memoryMiB?: number | null;
  netBytesPerSec?: number | null;
  diskBytesPerSec?: number | null;
}

/** `GET /api/v1/tasks/:id`, an item of `GET /api/v1/tasks`. */
export type Task = V1TasksDetailData;
export type TaskState = Task['state'];
export type TaskAction = Task['action'];

export interface SmartPool {
  id: number;
  name: string;
  members?: Array<{ entityType: 'pool' | 'host' | 'storage_pool' | 'vm'; entityId: number; name?: string }>;
}

export interface Graph {
  entity: string;
  metric: string;
  title: string;
  unit: string;
  from: number;
  to: number;
  step: number;
  /** Buckets from here on are still filling (left out of the drawing). */
  partialFrom?: number;
  source: 'raw' | 'rollup';
  series: Array<{ name: string; points: Array<[number, number | null, number | null]> }>;
}

/** What each action needs the VM to be in (api/vms/vm-states.ts, VM_ACTION_RULES). */
export const VM_ACTIONS: Record<string, { label: string; from: string[] }> = {
  start: { label: 'Start', from: ['defined', 'shutoff', 'crashed'] },
  shutdown: { label: 'Shut down', from: ['running'] },
  destroy: { label: 'Power off', from: ['running', 'paused', 'stopping', 'crashed', 'unknown'] },
  suspend: { label: 'Suspend', from: ['running'] },
  resume: { label: 'Resume', from: ['paused'] },
  save: { label: 'Save', from: ['running', 'paused'] },
  restore: { label: 'Restore', from: ['saved'] },
  migrate: { label: 'Migrate…', from: ['running', 'paused', 'shutoff', 'saved'] },
  delete: { label: 'Delete', from: ['defined', 'shutoff', 'crashed', 'saved'] },
};

export const RUNNING_STATES = new Set([
  'running',
  'paused',
  'migrating',
  'stopping',
  'suspending',
  'saving',
  'starting',
  'resuming',
  'restoring',
]);

/** An alert instance as `GET /api/v1/alerts` and the `alert` live event carry it. */
export type Alert = V1AlertsListData['items'][number];

/** A collectd notification as `GET /api/v1/events` (and `…/hosts/:id/events`, `…/vms/:id/events`) and the `event` live event carry it. */
export type CollectdEvent = V1EventsListData['items'][number];
