import { type ExpressionBuilder, sql } from 'kysely';
import type { Database } from '../../lib/db.js';
import type { DB } from '../../schema/index.js';
import { isActive } from '../vms/vm-states.js';
import type { DomainInfo, DomainState } from './driver/index.js';

/** herd states a stopped domain is consistent with: nothing to correct. */
const AT_REST = new Set(['defined', 'shutoff', 'saved']);
/** herd states in which the VM needs no domain on its host (not yet defined, or kept as a saved image). */
const WITHOUT_DOMAIN = new Set(['defined', 'saved', 'unknown']);

/**
 * What herd's VM state should become given what libvirt says (undefined: the domain is missing), or null when
 * herd's state already agrees. libvirt is the truth for anything that happened outside herd: a guest that shut
 * itself down, crashed, or was paused with virsh; and for transitional states a dead task left behind.
 */
export function reconciledState(herd: string, domain: DomainState | undefined): string | null {
  if (domain === undefined) return WITHOUT_DOMAIN.has(herd) ? null : 'unknown';
  switch (domain) {
    case 'running':
    case 'paused':
    case 'crashed':
      return herd === domain ? null : domain;
    case 'shutoff':
      return AT_REST.has(herd) ? null : 'shutoff';
    case 'saved':
      return herd === 'saved' ? null : 'saved';
    default:
      // libvirt has no state for it right now: nothing to conclude.
      return null;
  }
}

export interface VmOnHost {
  id: number;
  uuid: string;
  name: string;
  pool_id: number;
  state: string;
  /** When its state last changed, as PostgreSQL prints it (microseconds kept: a Date would lose them). */
  state_changed_at: string;
}

/** No task (queued or running) acts on the VM of the row: tasks own the VMs they act on. */
const noTaskActing = ({ not, exists, selectFrom }: ExpressionBuilder<DB, 'vms'>) =>
  not(
    exists(
      selectFrom('tasks')
        .select('tasks.id')
        .where('tasks.target_type', '=', 'vm')
        .whereRef('tasks.target_id', '=', 'vms.id')
        .where('tasks.state', 'in', ['queued', 'running']),
    ),
  );

/** What reconciliation reads of a VM (VmOnHost). */
const vmOnHostColumns = [
  'id',
  'uuid',
  'name',
  'pool_id',
  'state',
  sql<string>`state_changed_at::text`.as('state_changed_at'),
] as const;

/**
 * The host's VMs that no task is acting on (queued or running): those a task owns are left to it. Read before
 * libvirt is asked for the host's domains, so that a correction applies only to a VM unchanged since
 * (applyReconciledState): a start that completed while libvirt was being asked is then never undone from a domain
 * list taken before it.
 */
export async function idleVmsOnHost(db: Database, hostId: number): Promise<VmOnHost[]> {
  return db
    .selectFrom('vms')
    .select(vmOnHostColumns)
    .where('host_id', '=', hostId)
    .where(noTaskActing)
    .execute();
}

/** One VM by UUID, with its host, if no task acts on it (a domain event names it). */
export async function idleVmByUuid(
  db: Database,
  uuid: string,
): Promise<(VmOnHost & { host_id: number | null }) | undefined> {
  return db
    .selectFrom('vms')
    .select([...vmOnHostColumns, 'host_id'])
    .where('uuid', '=', uuid)
    .where(noTaskActing)
    .executeTakeFirst();
}

/**
 * Applies one correction if the VM is still as seen — same state, on the same host, its state not changed since
 * (a change back to the same state counts) — and no task took it meanwhile (a task queued between the read and
 * this write wins). True when the row changed.
 */
export async function applyReconciledState(
  db: Database,
  vm: VmOnHost,
  hostId: number,
  state: string,
  moveTo?: number,
): Promise<boolean> {
  // qemu started: a domain seen paused on its way up (libvirt starts qemu paused, then resumes it) counts too.
  const startedNow = (state === 'running' || state === 'paused') && !isActive(vm.state);
  const res = await db
    .updateTable('vms')
    .set({
      state,
      state_changed_at: sql`now()`,
      ...(startedNow ? { started_at: sql`now()` } : {}),
      ...(moveTo === undefined ? {} : { host_id: moveTo }),
    })
    .where('id', '=', vm.id)
    .where('state', '=', vm.state)
    .where(sql<boolean>`state_changed_at = ${vm.state_changed_at}::timestamptz`)
    .where('host_id', '=', hostId)
    .where(noTaskActing)
    .executeTakeFirst();
  return res.numUpdatedRows > 0n;
}

/**
 * herd's VMs recorded on another host as `unknown` (their domain vanished there) whose domain this host has:
 * moved outside herd (`virsh migrate`, or a migration whose worker died). No task acts on them.
 */
export async function strayVmsFoundOn(
  db: Database,
  hostId: number,
  uuids: string[],
): Promise<Array<VmOnHost & { host_id: number }>> {
  if (uuids.length === 0) return [];
  const rows = await db
    .selectFrom('vms')
    .select([...vmOnHostColumns, 'host_id'])
    .where('uuid', 'in', uuids)
    .where('state', '=', 'unknown')
    .where('host_id', 'is not', null)
    .where('host_id', '<>', hostId)
    .where(noTaskActing)
    .execute();
  return rows.map((r) => ({ ...r, host_id: r.host_id as number }));
}

/** Domains by UUID (lower case, as PostgreSQL prints uuids). */
export function domainsByUuid(domains: DomainInfo[]): Map<string, DomainInfo> {
  return new Map(domains.map((d) => [d.uuid.toLowerCase(), d]));
}
