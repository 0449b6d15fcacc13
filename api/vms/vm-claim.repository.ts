import { sql } from 'kysely';
import type { Database } from '../../lib/db.js';
import type { PlacementPolicy, Role } from '../../schema/index.js';
import type { CandidateHost, StoredDecision } from '../placement/placement.js';
import type { HostClaim } from '../placement/placement.service.js';
import type { QuotaRefusal } from '../quota/quota.repository.js';
import type { VmState } from './vm-states.js';

/** What an action on a VM starts from (herd_vm_action_context, migration T70), read in one round trip. */
export interface VmActionContext {
  id: number;
  name: string;
  pool_id: number;
  owner_id: number;
  state: string;
  vcpus: number;
  memory_mib: number;
  host_id: number | null;
  /** The hardware pool holding the VM's pool: its hosts (and those of hardware pools nested in it) are candidates. */
  hardware_pool_id: number;
  /** That hardware pool and the hardware pools nested in it. */
  hardware_pool_ids: number[];
  placement_policy: PlacementPolicy | null;
  nic_count: number;
  /** The caller's strongest grant on the VM's pool or an ancestor (the super-admin flag is not looked at). */
  role: Role | null;
  /** The candidate hosts, when asked for (read without locks: the claim checks the room again). */
  hosts: CandidateHost[] | null;
}

export async function vmActionContext(
  db: Database,
  vmId: number,
  userId: number,
  withHosts: boolean,
): Promise<VmActionContext | undefined> {
  const { rows } = await sql<{ ctx: VmActionContext | null }>`
    SELECT herd_vm_action_context(${vmId}::int, ${userId}::int, ${withHosts}::boolean) AS ctx`.execute(db);
  return rows[0].ctx ?? undefined;
}

/** A start, restore or migrate as herd_vm_claim takes it (see the migration for each field). */
export interface VmClaimRequest {
  vmId: number;
  from: string;
  to: VmState;
  size: { vcpus: number; memoryMiB: number };
  /** null: the VM already counts against its quotas (it is active). */
  quota: { poolId: number; userId: number; nics: number; active: readonly string[] } | null;
  migrate: boolean;
  task: { userId: number; action: string; poolId: number; args: Record<string, unknown> };
  hosts: HostClaim[];
  takenMeanwhile: { vcpus: string; memoryMiB: string };
  busyReason: string;
  decision: StoredDecision;
}

export type VmClaimOutcome =
  | { status: 'claimed'; taskId: number; hostId: number }
  | { status: 'quota'; refusal: QuotaRefusal | { error: 'pool_not_found' } }
  | { status: 'not_found' }
  | { status: 'invalid_state'; state: string }
  | { status: 'vm_changed' }
  | { status: 'no_host'; decision: StoredDecision };

/**
 * The claim of a start, restore or migrate in one statement, hence one transaction: quota, VM lock and state,
 * host room, task, state change. Nothing changes unless the outcome is `claimed`; then the task still needs its
 * job (TaskJobQueue).
 */
export async function claimVmAction(db: Database, request: VmClaimRequest): Promise<VmClaimOutcome> {
  const { rows } = await sql<{ outcome: VmClaimOutcome }>`
    SELECT herd_vm_claim(${JSON.stringify(request)}::jsonb) AS outcome`.execute(db);
  return rows[0].outcome;
}
