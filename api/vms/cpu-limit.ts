import type { Database } from '../../lib/db.js';
import type { Logger } from '../../lib/log.js';
import type { HostConnections } from '../hosts/driver/index.js';
import { HttpError } from '../http/errors.js';
import { effectiveCpuLimit } from './vm-spec.js';
import { vmsWithLiveCpuLimit } from './vms.repository.js';

/** What applying CPU limits on hosts needs: the database (or the transaction that changed them) and the hosts. */
export interface CpuLimitDeps {
  db: Database;
  hostConnections?: HostConnections;
  log?: Logger;
}

/**
 * Puts the CPU limit of a running or paused VM, as the database now has it (the lower of its own and its pool's),
 * on its host: live and in the persistent definition (as `virsh schedinfo --live --config`). A VM not on a host
 * picks its limit up from its definition at the next start. A host that refuses is a 409 `host_unreachable`:
 * called inside the transaction that changed the limit, the change is then not made.
 */
export async function applyVmCpuLimit(deps: CpuLimitDeps, vmId: number): Promise<void> {
  for (const vm of await vmsWithLiveCpuLimit(deps.db, { vmId })) {
    try {
      await setOnHost(deps, vm);
    } catch (err) {
      throw new HttpError(
        409,
        'host_unreachable',
        `cpuLimitPercent: could not apply the limit of VM ${vm.name} (${vm.id}) on host ${vm.hostname}: ${(err as Error).message}`,
        { field: 'cpuLimitPercent' },
      );
    }
  }
}

/**
 * After a VM pool's limit changed: every running or paused VM of the pool gets its new effective limit on its
 * host. A host that refuses is logged and answered; its VMs get the limit at their next start.
 */
export async function applyPoolCpuLimit(
  deps: CpuLimitDeps,
  poolId: number,
): Promise<Array<{ vmId: number; error: string }>> {
  const failed: Array<{ vmId: number; error: string }> = [];
  await Promise.all(
    (await vmsWithLiveCpuLimit(deps.db, { poolId })).map(async (vm) => {
      try {
        await setOnHost(deps, vm);
      } catch (err) {
        deps.log?.warn(
          { err, vmId: vm.id, host: vm.hostname },
          'could not apply the pool CPU limit on the host',
        );
        failed.push({ vmId: vm.id, error: (err as Error).message });
      }
    }),
  );
  return failed;
}

async function setOnHost(
  deps: CpuLimitDeps,
  vm: Awaited<ReturnType<typeof vmsWithLiveCpuLimit>>[number],
): Promise<void> {
  if (!deps.hostConnections) throw new Error('this herd process has no connection to hosts');
  const driver = await deps.hostConnections.get(vm.uri);
  await driver.setCpuLimit(vm.uuid, effectiveCpuLimit(vm.cpu_limit_percent, vm.pool_cpu_limit_percent));
}
