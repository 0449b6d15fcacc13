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
 * Storage is counted in every state. (README, "Quota semantics".)
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
