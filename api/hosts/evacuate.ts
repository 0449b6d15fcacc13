import type { AuthUser } from '../auth/auth-user.js';
import { HttpError } from '../http/errors.js';
import { requestVmAction } from '../vms/vm-actions.service.js';
import { VM_ACTION_RULES, type VmState } from '../vms/vm-states.js';
import type { HostDeps } from './hosts.service.js';
import { hostFor, patchHost } from './hosts.service.js';

/**
 * Empties a host: disables it first (placement then never picks it), then asks for one migrate task per VM on
 * it, to a host placement chooses (live for running/paused VMs, cold for stopped/saved ones). VMs that cannot
 * move now (a task acting on them, a state migrate does not accept, no room elsewhere) are listed as skipped
 * with the reason; evacuating again later picks them up.
 */
export async function evacuateHost(
  deps: HostDeps,
  user: AuthUser,
  id: number,
): Promise<{ taskIds: number[]; skipped: Array<{ vmId: number; reason: string }> }> {
  await hostFor(deps, user, id, 'modify');
  await patchHost(deps, user, id, { enabled: false });
  const vms = await deps.db
    .selectFrom('vms')
    .select(['id', 'name', 'state'])
    .where('host_id', '=', id)
    .orderBy('id')
    .execute();
  const taskIds: number[] = [];
  const skipped: Array<{ vmId: number; reason: string }> = [];
  for (const vm of vms) {
    if (!VM_ACTION_RULES.migrate.from.includes(vm.state as VmState)) {
      skipped.push({ vmId: vm.id, reason: `${vm.name} is ${vm.state}` });
      continue;
    }
    try {
      const { taskId } = await requestVmAction(deps, user, vm.id, { action: 'migrate' });
      taskIds.push(taskId);
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      skipped.push({ vmId: vm.id, reason: err.message });
    }
  }
  deps.log.info({ hostId: id, tasks: taskIds.length, skipped: skipped.length }, 'host evacuation requested');
  return { taskIds, skipped };
}
