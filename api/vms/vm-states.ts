/**
 * VM states, shared by the task worker, the host reconciler and the quota engine.
 * Transitional states (…ing) are shown while a task runs.
 */
export const VM_STATES = [
  'defined',
  'starting',
  'running',
  'stopping',
  'shutoff',
  'crashed',
  'suspending',
  'paused',
  'resuming',
  'saving',
  'saved',
  'restoring',
  'migrating',
  'deleting',
  'unknown',
] as const;
export type VmState = (typeof VM_STATES)[number];

/**
 * States in which a VM holds vCPUs, memory, NICs and a VM-count slot: running or on its way to running.
 * Storage is counted in every state. (docs/quotas.md, "Quota semantics".)
 */
export const ACTIVE_VM_STATES: readonly VmState[] = [
  'starting',
  'running',
  'stopping',
  'suspending',
  'paused',
  'resuming',
  'saving',
  'restoring',
  'migrating',
  // A VM whose host stopped answering may well still be running: count it until the host says otherwise.
  'unknown',
];

export const isActive = (state: string): boolean => (ACTIVE_VM_STATES as readonly string[]).includes(state);

/** What a caller can ask of a VM (`POST /api/v1/vms/:id/actions`); deletion is `DELETE /api/v1/vms/:id`. */
export const VM_ACTIONS = [
  'start',
  'shutdown',
  'destroy',
  'suspend',
  'resume',
  'save',
  'restore',
  'migrate',
] as const;
export type VmAction = (typeof VM_ACTIONS)[number];
/** Every action a task can carry out on a VM. */
export type VmTaskAction = VmAction | 'delete';

/**
 * The states each action is allowed from, and the transitional state the VM shows while its task runs.
 * `destroy` is allowed while a graceful shutdown runs (pulling the plug on a guest that ignores it);
 * `migrate` is live from running/paused and cold from shutoff/saved.
 */
export const VM_ACTION_RULES: Record<VmTaskAction, { from: readonly VmState[]; during: VmState }> = {
  start: { from: ['defined', 'shutoff', 'crashed'], during: 'starting' },
  shutdown: { from: ['running'], during: 'stopping' },
  destroy: { from: ['running', 'paused', 'stopping', 'crashed', 'unknown'], during: 'stopping' },
  suspend: { from: ['running'], during: 'suspending' },
  resume: { from: ['paused'], during: 'resuming' },
  save: { from: ['running', 'paused'], during: 'saving' },
  restore: { from: ['saved'], during: 'restoring' },
  migrate: { from: ['running', 'paused', 'shutoff', 'saved'], during: 'migrating' },
  delete: { from: ['defined', 'shutoff', 'crashed', 'saved'], during: 'deleting' },
};

/** Actions that need room on a host: quota and placement are claimed with the state change. */
export const PLACING_ACTIONS: ReadonlySet<VmTaskAction> = new Set(['start', 'restore', 'migrate']);
