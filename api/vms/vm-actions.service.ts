import type { Logger } from '../../lib/log.js';
import type { Database } from '../../schema/db.js';
import { type Need, type PoolRole, seesVm } from '../access/access.service.js';
import type { AuthUser } from '../auth/auth-user.js';
import type { HostConnections } from '../hosts/driver/index.js';
import { conflict, forbidden, notFound } from '../http/errors.js';
import type { LiveSummarySource } from '../placement/live-usage.js';
import {
  type CandidateHost,
  type StoredDecision,
  storedDecision,
  takenMeanwhileFormats,
} from '../placement/placement.js';
import {
  BUSY_REASON,
  decide,
  HOSTS_PER_CLAIM,
  type HostClaim,
  hostClaims,
  NoHostError,
  showsHosts,
  unclaimedDecision,
} from '../placement/placement.service.js';
import { quotaRefusal } from '../quota/quota.service.js';
import { assertNotBlocked } from '../quota-enforcer/quota-block.js';
import type { TaskRow } from '../tasks/tasks.repository.js';
import {
  batchedClaimVmAction,
  batchedVmActionContext,
  freshCandidateHosts,
  type VmActionContext,
  type VmClaimOptions,
} from './vm-claim.repository.js';
import {
  ACTIVE_VM_STATES,
  isActive,
  PLACING_ACTIONS,
  VM_ACTION_RULES,
  type VmState,
  type VmTaskAction,
} from './vm-states.js';
import type { VmTaskArgs } from './vm-task-handler.js';
import { queueVmTask, revertTransition, updateVm, vmById } from './vms.repository.js';

export interface VmActionRequest {
  action: VmTaskAction;
  /** start/restore: manual placement; migrate: the destination (placement chooses when absent). */
  hostId?: number;
  /** shutdown: how long the guest may take (default DEFAULT_SHUTDOWN_TIMEOUT_SECONDS). */
  timeoutSeconds?: number;
  /** shutdown: power off when the guest does not shut down in time. */
  force?: boolean;
  /** Why it is asked (kept in the task's args): the balancer's explanation of a move. */
  reason?: string;
}

export interface VmActionDeps {
  db: Database;
  liveView?: LiveSummarySource;
  /** Where failures to queue a task's job are reported (a logger of their own otherwise). */
  log?: Logger;
  /** The process's host connections (applying a CPU limit to a running VM). */
  hostConnections?: HostConnections;
}

const claimOptions = (deps: VmActionDeps): VmClaimOptions => ({ log: deps.log });

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
 * The caller's role on the VM's pool, decided as assertVm (access.service.ts) does, from the grant the context
 * read: notFound when the caller may not see the VM, forbidden when it may see but not `need` it.
 */
function assertVmRole(user: AuthUser, vm: VmActionContext, need: Need): PoolRole | 'super' {
  const role = user.isSuperAdmin ? 'super' : vm.role;
  if (!seesVm(role, vm, user)) throw notFound('vm');
  if (role === 'monitor' && need !== 'view') throw forbidden(`${need} on this vm needs a stronger role`);
  return role!;
}

/**
 * Asks for an action on a VM: checks access and the state machine (the VM, the caller's role and, for placing
 * actions, the candidate hosts read in one round trip, batched with other requests'), then claims what the action
 * needs and queues its task in one transaction. For start/restore/migrate that is one statement (herd_vm_claim, in
 * a batch with the claims other requests make meanwhile): the quota claim (locks the pools), the VM row locked and
 * checked again, then placement's choice claimed — the chosen host's allocation row locked, the room checked, the
 * task inserted and the VM moved to its transitional state (which adds it to the host's allocation) — and the
 * task's job. Locks are always taken pools → VM → host, so concurrent claims queue instead of deadlocking, and no
 * two can both take the last room. Answers the task's id.
 */
export async function requestVmAction(
  deps: VmActionDeps,
  user: AuthUser,
  vmId: number,
  request: VmActionRequest,
): Promise<{ taskId: number }> {
  const placing = PLACING_ACTIONS.has(request.action);
  const vm = await batchedVmActionContext(deps.db, vmId, user.id, placing, claimOptions(deps));
  if (!vm) throw notFound('vm');
  const role = assertVmRole(user, vm, request.action === 'delete' ? 'modify' : 'control');
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
    ...(request.reason !== undefined ? { reason: request.reason } : {}),
  };
  if (placing) return claimPlacingAction(deps, user, vm, request, args);
  // A pool under the `block` policy takes no resumes while over quota. (Starts and restores need no check
  // here: over quota, their claim already fails.)
  if (request.action === 'resume')
    await assertNotBlocked(deps.db, { poolId: vm.pool_id, userId: vm.owner_id });

  return deps.db.transaction().execute(async (trx) => {
    const queued = await queueVmTask(
      trx,
      {
        userId: user.id,
        action: request.action,
        targetType: 'vm',
        targetId: vm.id,
        poolId: vm.pool_id,
        args: args as unknown as Record<string, unknown>,
      },
      { vmId: vm.id, from: vm.state, to: rule.during },
    );
    if (!queued.moved) {
      const now = await vmById(trx, vm.id);
      if (!now) throw notFound('vm');
      throw invalidState(vm, request.action, now.state);
    }
    return { taskId: queued.taskId };
  });
}

/**
 * start, restore, migrate: placement decides from the context's hosts, herd_vm_claim claims in one statement. When
 * no host had room by allocations the process kept (VmClaimBatches), they were stale: placement decides again on
 * allocations read now.
 */
async function claimPlacingAction(
  deps: VmActionDeps,
  user: AuthUser,
  vm: VmActionContext,
  request: VmActionRequest,
  args: VmTaskArgs,
): Promise<{ taskId: number }> {
  const migrate = request.action === 'migrate';
  const size = { vcpus: vm.vcpus, memoryMiB: vm.memory_mib };
  const place = async (candidates: CandidateHost[]) => {
    const decision = decide(candidates, {
      vm,
      request: size,
      hostId: request.hostId,
      excludeHostIds: migrate && vm.host_id !== null ? [vm.host_id] : undefined,
      preferHostId: request.action === 'restore' ? (vm.host_id ?? undefined) : undefined,
      live: deps.liveView,
    });
    const takenMeanwhile = takenMeanwhileFormats(size);
    const claim = (tried: HostClaim[], stored: StoredDecision) =>
      batchedClaimVmAction(
        deps.db,
        {
          vmId: vm.id,
          from: vm.state,
          to: VM_ACTION_RULES[request.action].during,
          size,
          // An active VM (a live migration) already counts against its quotas.
          quota: isActive(vm.state)
            ? null
            : { poolId: vm.pool_id, userId: vm.owner_id, nics: vm.nic_count, active: ACTIVE_VM_STATES },
          migrate,
          task: {
            userId: user.id,
            action: request.action,
            poolId: vm.pool_id,
            args: args as unknown as Record<string, unknown>,
          },
          hosts: tried,
          takenMeanwhile,
          busyReason: BUSY_REASON,
          decision: stored,
        },
        claimOptions(deps),
      );
    // The best hosts first, a few at a time: the first of them nearly always has the room, and what the claim
    // reads and writes grows with every host it is given. The decision carries over what each round found.
    let outcome = await claim(
      hostClaims(decision, 0, HOSTS_PER_CLAIM),
      storedDecision(decision, { action: request.action, decidedAt: new Date() }),
    );
    for (let next = HOSTS_PER_CLAIM; outcome.status === 'no_host'; next += HOSTS_PER_CLAIM) {
      const hosts = hostClaims(decision, next, HOSTS_PER_CLAIM);
      if (!hosts.length) break;
      outcome = await claim(hosts, outcome.decision);
    }
    return { decision, outcome };
  };
  let { decision, outcome } = await place(vm.hosts ?? []);
  if (outcome.status === 'no_host' && vm.hostsCached) {
    ({ decision, outcome } = await place(
      await freshCandidateHosts(deps.db, vm.hardware_pool_ids, claimOptions(deps)),
    ));
  }
  switch (outcome.status) {
    case 'claimed':
      return { taskId: outcome.taskId };
    case 'quota':
      if ('error' in outcome.refusal) throw notFound('pool');
      throw quotaRefusal(outcome.refusal);
    case 'not_found':
      throw notFound('vm');
    case 'invalid_state':
      throw invalidState(vm, request.action, outcome.state);
    case 'vm_changed':
      throw conflict('vm_changed', `VM ${vm.name} (${vm.id}) was resized meanwhile; ask again`, {
        state: vm.state,
      });
    case 'no_host': {
      // The refusal is the last decision: keep it to explain (the claim changed nothing else).
      const failed = unclaimedDecision(decision, outcome.decision);
      await updateVm(deps.db, vm.id, {
        placement: JSON.stringify(storedDecision(failed, { action: request.action, decidedAt: new Date() })),
      });
      throw new NoHostError(failed, await showsHosts(deps.db, user, vm.hardware_pool_id));
    }
  }
}

/** A VM task cancelled before it started: the VM goes back to the state and host it had, releasing its claim. */
export async function undoVmTransition(db: Database, task: TaskRow): Promise<void> {
  const args = task.args as unknown as Partial<VmTaskArgs>;
  if (args.from) await revertTransition(db, task.target_id, task.id, args.from);
}
