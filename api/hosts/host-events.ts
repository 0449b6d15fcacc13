import type { EventEmitter } from 'node:events';
import type { HostState } from '../../schema/index.js';

/**
 * State changes herd noticed on its own (heartbeat, reconciliation, admin changes), emitted on the
 * process's EventEmitter (`AppDeps.events`) for the dashboard's live pushes and for alerting.
 */
export const HOST_STATE_EVENT = 'host.state';
export const VM_STATE_EVENT = 'vm.state';

export interface HostStateEvent {
  hostId: number;
  hostname: string;
  poolId: number;
  state: HostState;
  previous: HostState;
  /** libvirt's answer to the heartbeat, null when it answered. */
  heartbeatError: string | null;
  /** No collectd traffic for 3 intervals (or none ever). */
  collectdSilent: boolean;
  enabled: boolean;
  at: string;
}

export interface VmStateEvent {
  vmId: number;
  uuid: string;
  name: string;
  poolId: number;
  hostId: number | null;
  state: string;
  previous: string;
  /** Why: `reconcile` when libvirt disagreed with herd (changed outside herd, or a task died). */
  reason: 'reconcile';
  at: string;
}

export function emitHostState(events: EventEmitter | undefined, event: HostStateEvent): void {
  events?.emit(HOST_STATE_EVENT, event);
}

export function emitVmState(events: EventEmitter | undefined, event: VmStateEvent): void {
  events?.emit(VM_STATE_EVENT, event);
}
