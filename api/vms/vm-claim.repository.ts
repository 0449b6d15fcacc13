import { sql } from 'kysely';
import { CoalescingBatcher } from '../../lib/coalescing-batcher.js';
import type { Database } from '../../lib/db.js';
import { createLogger, type Logger } from '../../lib/log.js';
import type { PlacementPolicy, Role } from '../../schema/index.js';
import type { CandidateHost, StoredDecision } from '../placement/placement.js';
import type { HostClaim } from '../placement/placement.service.js';
import type { QuotaRefusal } from '../quota/quota.repository.js';
import { taskJobs } from '../tasks/tasks.repository.js';
import type { VmState } from './vm-states.js';

/** What an action on a VM starts from (herd_vm_action_context, migration T70; read in batches, see below). */
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
 * Claims of starts, restores or migrates, in order, in one statement, hence one transaction (herd_vm_claims,
 * migration T80): for each, quota, VM lock and state, host room, task and state change — nothing changes for a
 * claim whose outcome is not `claimed`. The claimed tasks' graphile-worker jobs are added in the same transaction,
 * with one NOTIFY for the lot (PostgreSQL serializes the commits of notifying transactions, WAL flush included: one
 * per batch rather than one per claim).
 */
export async function claimVmActions(db: Database, claims: VmClaimRequest[]): Promise<VmClaimOutcome[]> {
  const { rows } = await sql<{ outcomes: VmClaimOutcome[] }>`
    WITH claimed AS MATERIALIZED (SELECT herd_vm_claims(${JSON.stringify(claims)}::jsonb) AS outcomes)
    SELECT outcomes, (${taskJobs(sql`ARRAY(
      SELECT (o->>'taskId')::int FROM claimed, jsonb_array_elements(claimed.outcomes) AS o
      WHERE o->>'status' = 'claimed')`)}) AS jobs
    FROM claimed`.execute(db);
  return rows[0].outcomes;
}

/** One claim as claimVmActions makes them. */
export async function claimVmAction(db: Database, request: VmClaimRequest): Promise<VmClaimOutcome> {
  return (await claimVmActions(db, [request]))[0];
}

/**
 * Contexts and claims of concurrent requests, each kind batched into one statement (migration T80) while the
 * previous batch is in flight: under load one round trip and one commit serve many decisions. Claims go one batch
 * at a time per process (a batch is one transaction: its claims never wait on each other), sorted by pool then VM
 * so that batches of several processes lock pools in the same order. A batch of claims that fails as a whole (a
 * deadlock with another process, say) is claimed again one by one: each request still gets its own answer.
 */
class VmClaimBatches {
  readonly contexts = new CoalescingBatcher<ContextAsk, VmActionContext | undefined>(
    (asks) => this.readContexts(asks),
    { maxBatch: MAX_BATCH, maxInFlight: 1 },
  );
  readonly claims = new CoalescingBatcher<VmClaimRequest, VmClaimOutcome>((claims) => this.claimAll(claims), {
    maxBatch: MAX_BATCH,
    maxInFlight: 1,
  });

  constructor(
    private readonly db: Database,
    private readonly log: Logger,
  ) {}

  /** Host records placement ranks (without allocations), by id, as of their inventory version. */
  private readonly hostRecords = new Map<number, HostRecord>();

  private async readContexts(
    asks: ContextAsk[],
  ): Promise<PromiseSettledResult<VmActionContext | undefined>[]> {
    const { rows } = await sql<{
      answer: { contexts: Array<Omit<VmActionContext, 'hosts'> | null>; hostSets: HostSet[] };
    }>`
      SELECT herd_vm_action_contexts(${JSON.stringify(asks.map((a) => [a.vmId, a.userId, a.withHosts]))}::jsonb)
        AS answer`.execute(this.db);
    const { contexts, hostSets } = rows[0].answer;
    await this.refreshHostRecords(hostSets);
    const hostsOf = new Map(hostSets.map((set) => [set.pools.join(','), this.candidates(set)]));
    return contexts.map((ctx, i) => ({
      status: 'fulfilled',
      value: ctx
        ? { ...ctx, hosts: asks[i].withHosts ? (hostsOf.get(ctx.hardware_pool_ids.join(',')) ?? []) : null }
        : undefined,
    }));
  }

  /** Reads again the records of the hosts whose inventory changed (or that this process never saw). */
  private async refreshHostRecords(sets: HostSet[]): Promise<void> {
    const stale = new Set<number>();
    for (const set of sets) {
      set.ids.forEach((id, i) => {
        if (this.hostRecords.get(id)?.version !== set.versions[i]) stale.add(id);
      });
    }
    if (!stale.size) return;
    const { rows } = await sql<{ records: HostRecord[] }>`
      SELECT herd_host_records(${[...stale]}::int[]) AS records`.execute(this.db);
    for (const record of rows[0].records) this.hostRecords.set(record.id, record);
  }

  /** The candidate hosts of a set: the records with the allocations read with the set (a host gone meanwhile is left out). */
  private candidates(set: HostSet): CandidateHost[] {
    const hosts: CandidateHost[] = [];
    set.ids.forEach((id, i) => {
      const r = this.hostRecords.get(id);
      if (!r) return;
      // Spelled out: this runs for every candidate of every decision, and spreading costs several times more.
      hosts.push({
        id: r.id,
        hostname: r.hostname,
        enabled: r.enabled,
        state: r.state,
        cpus: r.cpus,
        memoryMiB: r.memoryMiB,
        reservedVcpus: r.reservedVcpus,
        reservedMemoryMiB: r.reservedMemoryMiB,
        cpuAllocationRatio: r.cpuAllocationRatio,
        ramAllocationRatio: r.ramAllocationRatio,
        poolCpuAllocationRatio: r.poolCpuAllocationRatio,
        poolRamAllocationRatio: r.poolRamAllocationRatio,
        allocatedVcpus: set.vcpus[i],
        allocatedMemoryMiB: set.memoryMiB[i],
      });
    });
    return hosts;
  }

  private async claimAll(claims: VmClaimRequest[]): Promise<PromiseSettledResult<VmClaimOutcome>[]> {
    const poolOf = (c: VmClaimRequest) => c.quota?.poolId ?? c.task.poolId;
    const order = claims
      .map((_, i) => i)
      .sort((a, b) => poolOf(claims[a]) - poolOf(claims[b]) || claims[a].vmId - claims[b].vmId);
    try {
      const outcomes = await claimVmActions(
        this.db,
        order.map((i) => claims[i]),
      );
      const results: PromiseSettledResult<VmClaimOutcome>[] = new Array(claims.length);
      order.forEach((i, k) => {
        results[i] = { status: 'fulfilled', value: outcomes[k] };
      });
      return results;
    } catch (err) {
      if (claims.length === 1) return [{ status: 'rejected', reason: err }];
      this.log.warn(
        { err, claims: claims.length },
        'a batch of VM claims failed as a whole: claiming each alone',
      );
      return Promise.allSettled(claims.map((c) => claimVmAction(this.db, c)));
    }
  }
}

/** herd_host_allocations (migration T80): the hosts of some hardware pools, as parallel arrays by host id. */
interface HostSet {
  pools: number[];
  ids: number[];
  versions: number[];
  vcpus: number[];
  memoryMiB: number[];
}

type HostRecord = Omit<CandidateHost, 'allocatedVcpus' | 'allocatedMemoryMiB'> & { version: number };

interface ContextAsk {
  vmId: number;
  userId: number;
  withHosts: boolean;
}

/** At most this many requests per batch (a batch of claims holds its locks until all of them are made). */
const MAX_BATCH = 64;

const batches = new WeakMap<Database, VmClaimBatches>();

/** The batches of a database handle, made on first use (failed batches are logged to `log`). */
function batchesOf(db: Database, log?: Logger): VmClaimBatches {
  let b = batches.get(db);
  if (!b) {
    b = new VmClaimBatches(db, log ?? createLogger('warn'));
    batches.set(db, b);
  }
  return b;
}

/** vmActionContext, read together with the contexts other requests ask for meanwhile. */
export function batchedVmActionContext(
  db: Database,
  vmId: number,
  userId: number,
  withHosts: boolean,
  log?: Logger,
): Promise<VmActionContext | undefined> {
  return batchesOf(db, log).contexts.submit({ vmId, userId, withHosts });
}

/** claimVmAction, in one transaction with the claims other requests make meanwhile. */
export function batchedClaimVmAction(
  db: Database,
  request: VmClaimRequest,
  log?: Logger,
): Promise<VmClaimOutcome> {
  return batchesOf(db, log).claims.submit(request);
}
