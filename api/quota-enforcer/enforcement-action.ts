import type { Database } from '../../schema/db.js';
import { VM_ACTION_RULES, type VmState } from '../vms/vm-states.js';
import type { VmTaskArgs } from '../vms/vm-task-handler.js';
import { queueVmTask } from '../vms/vms.repository.js';
import { lockVmInState } from './enforcement.repository.js';

/**
 * How herd suspends a VM to bring a quota back: `save` (suspend to disk). A paused VM still holds its memory and
 * counts against the quota (ACTIVE_VM_STATES), so only a saved one frees it; `restore` brings it back.
 */
export const ENFORCEMENT_ACTION = 'save' as const;
export const SUSPENDABLE_STATES: readonly VmState[] = VM_ACTION_RULES[ENFORCEMENT_ACTION].from;

/**
 * Queues the task worker's `save` of a VM in the caller's transaction, as herd (no user), the way the VM API
 * queues actions that need no placement (queueVmTask): the VM row is locked in the state it was read in, moved to
 * `saving` and bound to the task.
 * Answers the task id, or null when the VM changed state meanwhile (nothing queued).
 */
export type EnforcementAction = (
  trx: Database,
  vm: { id: number; pool_id: number },
  reason: string,
) => Promise<number | null>;

export const queueSave: EnforcementAction = async (trx, vm, reason) => {
  const locked = await lockVmInState(trx, vm.id, SUSPENDABLE_STATES);
  if (!locked) return null;
  const args: VmTaskArgs = {
    from: { state: locked.state as VmState, hostId: locked.host_id },
    reason,
  };
  const queued = await queueVmTask(
    trx,
    {
      userId: null,
      action: ENFORCEMENT_ACTION,
      targetType: 'vm',
      targetId: vm.id,
      poolId: locked.pool_id,
      args: args as unknown as Record<string, unknown>,
    },
    { vmId: vm.id, from: locked.state, to: VM_ACTION_RULES[ENFORCEMENT_ACTION].during },
  );
  // The row is locked in that state: the move cannot miss (rolling everything back if it somehow did).
  if (!queued.moved) throw new Error(`VM ${vm.id} left ${locked.state} while locked`);
  return queued.taskId;
};
