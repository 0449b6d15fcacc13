import type { Database } from '../../lib/db.js';
import { assertVm } from '../access/access.service.js';
import type { AuthUser } from '../auth/auth-user.js';
import { conflict, forbidden, notFound } from '../http/errors.js';
import type { LiveSummarySource } from '../placement/live-usage.js';
import { storedDecision } from '../placement/placement.js';
import { chooseAndClaim, NoHostError } from '../placement/placement.service.js';
import { claim } from '../quota/quota.service.js';
import type { TaskRow } from '../tasks/tasks.repository.js';
import { isActive, PLACING_ACTIONS, VM_ACTION_RULES, type VmState, type VmTaskAction } from './vm-states.js';
import type { VmTaskArgs } from './vm-task-handler.js';
import {
  lockVmWithCandidates,
  queueVmTask,
  revertTransition,
  updateVm,
  vmById,
  vmWithPools,
} from './vms.repository.js';

export interface VmActionRequest {
  action: VmTaskAction;
  /** start/restore: manual placement; migrate: the destination (placement chooses when absent). */
  hostId?: number;
  /** shutdown: how long the guest may take (default DEFAULT_SHUTDOWN_TIMEOUT_SECONDS). */
  timeoutSeconds?: number;
  /** shutdown: power off when the guest does not shut down in time. */
  force?: boolean;
}

export interface VmActionDeps {
  db: Database;
  liveView?: LiveSummarySource;
}

/** 409 `invalid_state`: the action is not allowed from the VM's current state, which the answer names. */
export function invalidState(vm: { id: number; name: string }, action: string, state: string) {
  const allowed = VM_ACTION_RULES[action as VmTaskAction]?.from ?? [];
  return conflict(
    'invalid_state',
    `cannot ${action} VM ${vm.name} (${vm.id}): it is ${state}; ${action} is allowed from ${allowed.join(', ')}`,
    { state },
  );
}

/**
 * Asks for an action on a VM: checks access and the state machine, then in one transaction claims what the action
 * needs and queues its task. For start/restore/migrate: the quota claim (locks the pools), the VM row locked and
 * read again with the candidate hosts, placement's choice, and one statement that locks the chosen host's
 * allocation, checks the room, inserts the task, queues its job and moves the VM to its transitional state (which
 * adds it to the host's allocation). Locks are always taken pools → VM → host, so concurrent claims queue instead
 * of deadlocking, and no two can both take the last room. Answers the task's id.
 */
export async function requestVmAction(
  deps: VmActionDeps,
  user: AuthUser,
  vmId: number,
  request: VmActionRequest,
): Promise<{ taskId: number }> {
  const vm = await vmWithPools(deps.db, vmId);
  if (!vm) throw notFound('vm');
  const role = await assertVm(deps.db, user, vm, request.action === 'delete' ? 'modify' : 'control');
  if (
    (request.action === 'migrate' || request.hostId !== undefined) &&
    role !== 'admin' &&
    role !== 'super'
  ) {
    throw forbidden('choosing hosts and migrating need the admin role on the VM pool');
  }
  const rule = VM_ACTION_RULES[request.action];
  if (!rule.from.includes(vm.state as VmState)) throw invalidState(vm, request.action, vm.state);

  const args: VmTaskArgs = {
    from: { state: vm.state as VmState, hostId: vm.host_id },
    ...(request.timeoutSeconds !== undefined ? { timeoutSeconds: request.timeoutSeconds } : {}),
    ...(request.force !== undefined ? { force: request.force } : {}),
  };
  const task = (hostId?: number) => ({
    userId: user.id,
    action: request.action,
    targetType: 'vm',
    targetId: vm.id,
    poolId: vm.pool_id,
    args: { ...args, ...(hostId !== undefined ? { hostId } : {}) } as unknown as Record<string, unknown>,
  });
  const transition = { vmId: vm.id, from: vm.state, to: rule.during };
  const refused = async (trx: Database, moved: boolean) => {
    if (moved) return;
    const now = await vmById(trx, vm.id);
    if (!now) throw notFound('vm');
    throw invalidState(vm, request.action, now.state);
  };

  if (!PLACING_ACTIONS.has(request.action)) {
    return deps.db.transaction().execute(async (trx) => {
      const queued = await queueVmTask(trx, task(), transition);
      await refused(trx, queued.moved);
      return { taskId: queued.taskId! };
    });
  }

  try {
    return await deps.db.transaction().execute(async (trx) => {
      // Pools first (the quota claim), then the VM, then one host's allocation: the order every claim locks in.
      if (!isActive(vm.state)) {
        await claim(trx, {
          poolId: vm.pool_id,
          userId: vm.owner_id,
          delta: { vcpus: vm.vcpus, memoryMiB: vm.memory_mib, nics: vm.nic_count, vms: 1 },
        });
      }
      const locked = await lockVmWithCandidates(trx, vm.id, vm.hardware_pool_ids);
      if (!locked.vm) throw notFound('vm');
      if (locked.vm.state !== vm.state) throw invalidState(vm, request.action, locked.vm.state);
      if (locked.vm.vcpus !== vm.vcpus || locked.vm.memory_mib !== vm.memory_mib) {
        throw conflict('vm_changed', `VM ${vm.name} (${vm.id}) was resized meanwhile; ask again`, {
          state: vm.state,
        });
      }
      const migrate = request.action === 'migrate';
      const size = { vcpus: vm.vcpus, memoryMiB: vm.memory_mib };
      const { value } = await chooseAndClaim(
        locked.hosts,
        {
          vm,
          request: size,
          hostId: request.hostId,
          excludeHostIds: migrate && vm.host_id !== null ? [vm.host_id] : undefined,
          preferHostId: request.action === 'restore' ? (vm.host_id ?? undefined) : undefined,
          live: deps.liveView,
        },
        async (candidate, decision, wait) => {
          const queued = await queueVmTask(
            trx,
            task(candidate.hostId),
            {
              ...transition,
              ...(migrate ? { migrationHostId: candidate.hostId } : { hostId: candidate.hostId }),
              placement: storedDecision(decision, { action: request.action, decidedAt: new Date() }),
            },
            {
              hostId: candidate.hostId,
              request: size,
              capacity: {
                vcpus: candidate.inventory.vcpus.capacity,
                memoryMiB: candidate.inventory.memoryMiB.capacity,
              },
              wait,
            },
          );
          if (queued.taskId === null) return { claimed: false, allocated: queued.allocated };
          await refused(trx, queued.moved);
          return { claimed: true, value: { taskId: queued.taskId } };
        },
      );
      return value;
    });
  } catch (err) {
    // The refusal is the last decision: keep it to explain (the transaction that made it rolled back).
    if (err instanceof NoHostError) {
      await updateVm(deps.db, vm.id, {
        placement: JSON.stringify(
          storedDecision(err.decision, { action: request.action, decidedAt: new Date() }),
        ),
      });
    }
    throw err;
  }
}

/** A VM task cancelled before it started: the VM goes back to the state and host it had, releasing its claim. */
export async function undoVmTransition(db: Database, task: TaskRow): Promise<void> {
  const args = task.args as unknown as Partial<VmTaskArgs>;
  if (args.from) await revertTransition(db, task.target_id, task.id, args.from);
}
