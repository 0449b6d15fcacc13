import type { Logger } from '../../lib/log.js';
import type { Database } from '../../schema/db.js';
import type { HostConnections } from '../hosts/driver/index.js';
import { HttpError } from '../http/errors.js';
import { effectiveLimits, ioLimits, LIMIT_COLUMNS, type LimitField, type LimitRow } from './limits.js';
import { vmsWithLiveLimits } from './vms.repository.js';

/** What applying limits on hosts needs: the database (or the transaction that changed them) and the hosts. */
export interface LimitDeps {
  db: Database;
  hostConnections?: HostConnections;
  log?: Logger;
}

type LiveVm = Awaited<ReturnType<typeof vmsWithLiveLimits>>[number];

/**
 * Puts the limits named in `fields` of a running or paused VM, as the database now has them, on its host: live
 * and in the persistent definition. A VM not on a host picks them up from its definition at the next start. A
 * host that refuses is a 409 `host_unreachable`: called inside the transaction that changed the limits, the
 * change is then not made.
 */
export async function applyVmLimits(deps: LimitDeps, vmId: number, fields: LimitField[]): Promise<void> {
  if (!fields.length) return;
  for (const vm of await vmsWithLiveLimits(deps.db, { vmId })) {
    try {
      await setOnHost(deps, vm, fields);
    } catch (err) {
      throw new HttpError(
        409,
        'host_unreachable',
        `${fields.join(', ')}: could not apply the limits of VM ${vm.name} (${vm.id}) on host ${vm.hostname}: ${(err as Error).message}`,
        { field: fields[0] },
      );
    }
  }
}

/**
 * After a VM pool's limits changed: every running or paused VM of the pool gets its new effective limits on its
 * host. A host that refuses is logged and answered; its VMs get the limits at their next start.
 */
export async function applyPoolLimits(
  deps: LimitDeps,
  poolId: number,
  fields: LimitField[],
): Promise<Array<{ vmId: number; error: string }>> {
  const failed: Array<{ vmId: number; error: string }> = [];
  if (!fields.length) return failed;
  await Promise.all(
    (await vmsWithLiveLimits(deps.db, { poolId })).map(async (vm) => {
      try {
        await setOnHost(deps, vm, fields);
      } catch (err) {
        deps.log?.warn(
          { err, vmId: vm.id, host: vm.hostname },
          'could not apply the pool limits on the host',
        );
        failed.push({ vmId: vm.id, error: (err as Error).message });
      }
    }),
  );
  return failed;
}

async function setOnHost(deps: LimitDeps, vm: LiveVm, fields: LimitField[]): Promise<void> {
  if (!deps.hostConnections) throw new Error('this herd process has no connection to hosts');
  const driver = await deps.hostConnections.get(vm.uri);
  const own = Object.fromEntries(LIMIT_COLUMNS.map((c) => [c, vm[c]])) as LimitRow;
  const pool = Object.fromEntries(LIMIT_COLUMNS.map((c) => [c, vm[`pool_${c}`]])) as LimitRow;
  const effective = effectiveLimits(own, pool);
  if (fields.includes('cpuLimitPercent')) await driver.setCpuLimit(vm.uuid, effective.cpuLimitPercent);
  const kinds = (['net', 'disk'] as const).filter((k) => fields.some((f) => f.startsWith(k)));
  if (kinds.length) await driver.setIoLimits(vm.uuid, ioLimits(effective), kinds);
}
