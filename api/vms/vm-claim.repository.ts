import { sql } from 'kysely';
import { CoalescingBatcher } from '../../lib/coalescing-batcher.js';
import { DEFAULTS } from '../../lib/config.js';
import { createLogger, type Logger } from '../../lib/log.js';
import type { Database } from '../../schema/db.js';
import type { PlacementPolicy, Role } from '../../schema/index.js';
import type { CandidateHost, StoredDecision } from '../placement/placement.js';
import type { HostClaim } from '../placement/placement.service.js';
import type { QuotaRefusal } from '../quota/quota.repository.js';
import { queueTaskJobs } from '../tasks/task-queue-jobs.js';
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
  /** The hosts' allocations are the process's own, read earlier (see VmClaimBatches), not with this context. */
  hostsCached: boolean;
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
 * claim whose outcome is not `claimed`. The claimed tasks commit without their graphile-worker jobs: the batches
 * queue them right after (queueTaskJobs).
 */
export async function claimVmActions(db: Database, claims: VmClaimRequest[]): Promise<VmClaimOutcome[]> {
  const { rows } = await sql<{ outcomes: VmClaimOutcome[] }>`
    SELECT herd_vm_claims(${JSON.stringify(claims)}::jsonb) AS outcomes`.execute(db);
  return rows[0].outcomes;
}

/** One claim as claimVmActions makes them. */
export async function claimVmAction(db: Database, request: VmClaimRequest): Promise<VmClaimOutcome> {
  return (await claimVmActions(db, [request]))[0];
}

/**
 * Contexts and claims of concurrent requests, each kind batched into one statement (migration T80) while the
 * previous batch is in flight: under load one round trip and one commit serve many decisions. The claimed tasks'
 * jobs are added beside the claims (task-queue-jobs.ts), not in their transaction. A batch is one transaction: its
 * claims never wait on each other, and it holds its locks until all of them are made, so claims go at most
 * CLAIMS_PER_BATCH to a batch, sorted by pool then VM so that batches lock pools in the same order. Two batches of
 * claims are in flight at a time per process: one waiting on a lock or on its commit's flush no longer holds up
 * the next (with one, every claim queued behind each stall: docs/benchmarks.md, "Placement"). Claims of the two may wait on
 * each other as those of two processes do: a pool's quota lock is waited for, a host held is passed over in the
 * first round. A batch of claims that fails as a whole (a deadlock, say) is claimed again one by one: each request
 * still gets its own answer.
 *
 * Host allocations are kept per set of hardware pools, as a scheduler keeps host state: a context reads them again
 * only once they are older than `hostCacheMs` or a host of the set was added, removed or changed (migration
 * 2026-11-24T00 stamps every set), and this process's own claims are added as they are made. Ranking may then miss what other
 * processes claimed or released in the last `hostCacheMs`; it never decides on stale inventory, the claim checks
 * the room again under lock, and a decision that finds no room on cached allocations is made again on fresh ones.
 */
class VmClaimBatches {
  readonly contexts = new CoalescingBatcher<ContextAsk, VmActionContext | undefined>(
    (asks) => this.readContexts(asks),
    { maxBatch: MAX_BATCH, maxInFlight: 1 },
  );
  readonly claims = new CoalescingBatcher<VmClaimRequest, VmClaimOutcome>((claims) => this.claimAll(claims), {
    maxBatch: CLAIMS_PER_BATCH,
    maxInFlight: 2,
  });

  constructor(
    private readonly db: Database,
    private readonly log: Logger,
    private readonly hostCacheMs: number,
  ) {}

  /** Host records placement ranks (without allocations), by id, as of their inventory version. */
  private readonly hostRecords = new Map<number, HostRecord>();
  /** Allocations by set of hardware pools (their ids joined by commas), with the set's stamp and when they were read. */
  private readonly hostSets = new Map<string, { set: HostSet; stamp: string; readAt: number }>();

  private async readContexts(
    asks: ContextAsk[],
  ): Promise<PromiseSettledResult<VmActionContext | undefined>[]> {
    const readAt = performance.now();
    const fresh: Record<string, string> = {};
    for (const [key, held] of this.hostSets)
      if (readAt - held.readAt < this.hostCacheMs) fresh[key] = held.stamp;
    const { rows } = await sql<{
      answer: {
        contexts: Array<Omit<VmActionContext, 'hosts' | 'hostsCached'> | null>;
        stamps: Record<string, string>;
        hostSets: HostSet[];
      };
    }>`
      SELECT herd_vm_action_contexts_cached(
        ${JSON.stringify(asks.map((a) => [a.vmId, a.userId, a.withHosts]))}::jsonb, ${JSON.stringify(fresh)}::jsonb)
        AS answer`.execute(this.db);
    const { contexts, stamps, hostSets } = rows[0].answer;
    const read = new Set<string>();
    for (const set of hostSets) {
      const key = set.pools.join(',');
      read.add(key);
      this.holdSet(key, set, stamps[key], readAt);
    }
    const used = Object.keys(stamps).map((key) => this.hostSets.get(key)!.set);
    await this.refreshHostRecords(used);
    const hostsOf = new Map(used.map((set) => [set.pools.join(','), this.candidates(set)]));
    return contexts.map((ctx, i) => {
      if (!ctx) return { status: 'fulfilled', value: undefined };
      const key = ctx.hardware_pool_ids.join(',');
      const withHosts = asks[i].withHosts;
      return {
        status: 'fulfilled',
        value: {
          ...ctx,
          hosts: withHosts ? (hostsOf.get(key) ?? []) : null,
          hostsCached: withHosts && !read.has(key),
        },
      };
    });
  }

  /** The candidate hosts of some hardware pools with their allocations read now (and kept for the next decisions). */
  async freshHosts(pools: number[]): Promise<CandidateHost[]> {
    const readAt = performance.now();
    const { rows } = await sql<{ set: HostSet; stamp: string }>`
      SELECT herd_host_allocations(${pools}::int[]) AS set, herd_host_set_stamp(${pools}::int[]) AS stamp`.execute(
      this.db,
    );
    const { set, stamp } = rows[0];
    this.holdSet(pools.join(','), set, stamp, readAt);
    await this.refreshHostRecords([set]);
    return this.candidates(set);
  }

  /**
   * Keeps a set's allocations as read. When its hosts are not the ones held before (a host was removed or moved to
   * another hardware pool), the records of hosts that no set held lists any more are dropped.
   */
  private holdSet(key: string, set: HostSet, stamp: string, readAt: number): void {
    const before = this.hostSets.get(key)?.set.ids;
    this.hostSets.set(key, { set, stamp, readAt });
    if (!before || (before.length === set.ids.length && before.every((id, i) => id === set.ids[i]))) return;
    const listed = new Set<number>();
    for (const held of this.hostSets.values()) for (const id of held.set.ids) listed.add(id);
    for (const id of this.hostRecords.keys()) if (!listed.has(id)) this.hostRecords.delete(id);
  }

  /** How many host records and sets of hardware pools are held (for tests). */
  get held(): { hostRecords: number; hostSets: number } {
    return { hostRecords: this.hostRecords.size, hostSets: this.hostSets.size };
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

  /** The candidate hosts of a set: the records with the set's allocations (a host gone meanwhile is left out). */
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

  /**
   * What a claim did to the allocations kept: a claimed host holds the VM from now on (a migration's destination
   * too, the source still holding it); a claim that found no room on any of its hosts had ranked them from
   * allocations gone stale, so the sets holding them are read again.
   */
  private noteClaim(claim: VmClaimRequest, outcome: VmClaimOutcome): void {
    if (outcome.status === 'claimed') {
      for (const { set } of this.hostSets.values()) {
        const at = set.ids.indexOf(outcome.hostId);
        if (at < 0) continue;
        set.vcpus[at] += claim.size.vcpus;
        set.memoryMiB[at] += claim.size.memoryMiB;
      }
    } else if (outcome.status === 'no_host') {
      for (const held of this.hostSets.values())
        if (claim.hosts.some((h) => held.set.ids.includes(h.id))) held.readAt = Number.NEGATIVE_INFINITY;
    }
  }

  private async claimAll(claims: VmClaimRequest[]): Promise<PromiseSettledResult<VmClaimOutcome>[]> {
    const poolOf = (c: VmClaimRequest) => c.quota?.poolId ?? c.task.poolId;
    const order = claims
      .map((_, i) => i)
      .sort((a, b) => poolOf(claims[a]) - poolOf(claims[b]) || claims[a].vmId - claims[b].vmId);
    let results: PromiseSettledResult<VmClaimOutcome>[];
    try {
      const sorted = await claimVmActions(
        this.db,
        order.map((i) => claims[i]),
      );
      results = new Array(claims.length);
      order.forEach((i, k) => {
        results[i] = { status: 'fulfilled', value: sorted[k] };
      });
    } catch (err) {
      if (claims.length === 1) return [{ status: 'rejected', reason: err }];
      this.log.warn(
        { err, claims: claims.length },
        'a batch of VM claims failed as a whole: claiming each alone',
      );
      results = await Promise.allSettled(claims.map((c) => claimVmAction(this.db, c)));
    }
    const taskIds: number[] = [];
    results.forEach((r, i) => {
      if (r.status !== 'fulfilled') return;
      this.noteClaim(claims[i], r.value);
      if (r.value.status === 'claimed') taskIds.push(r.value.taskId);
    });
    if (taskIds.length) void queueTaskJobs(this.db, taskIds, this.log);
    return results;
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

/** At most this many contexts per batch. */
const MAX_BATCH = 64;
/** At most this many claims per batch: a batch holds its locks until all of them are made. */
const CLAIMS_PER_BATCH = 8;

const batches = new WeakMap<Database, VmClaimBatches>();

/** How a database handle's batches are made: where failed batches are logged, how long host allocations are kept. */
export interface VmClaimOptions {
  log?: Logger;
  hostCacheMs?: number;
}

/** The batches of a database handle, made on first use with `options` (the first caller's). */
function batchesOf(db: Database, options: VmClaimOptions = {}): VmClaimBatches {
  let b = batches.get(db);
  if (!b) {
    b = new VmClaimBatches(
      db,
      options.log ?? createLogger('warn'),
      options.hostCacheMs ?? DEFAULTS.placementCacheMs,
    );
    batches.set(db, b);
  }
  return b;
}

/** How many host records and sets of hardware pools a database handle's batches hold (none made yet: zero). */
export function heldPlacementState(db: Database): { hostRecords: number; hostSets: number } {
  return batches.get(db)?.held ?? { hostRecords: 0, hostSets: 0 };
}

/** Makes the batches of a database handle with `options`, unless some caller already made them. */
export function configureVmClaims(db: Database, options: VmClaimOptions): void {
  batchesOf(db, options);
}

/** An action's context, read together with the contexts other requests ask for meanwhile. */
export function batchedVmActionContext(
  db: Database,
  vmId: number,
  userId: number,
  withHosts: boolean,
  options?: VmClaimOptions,
): Promise<VmActionContext | undefined> {
  return batchesOf(db, options).contexts.submit({ vmId, userId, withHosts });
}

/** The candidate hosts of some hardware pools, their allocations read now. */
export function freshCandidateHosts(
  db: Database,
  hardwarePoolIds: number[],
  options?: VmClaimOptions,
): Promise<CandidateHost[]> {
  return batchesOf(db, options).freshHosts(hardwarePoolIds);
}

/** claimVmAction, in one transaction with the claims other requests make meanwhile. */
export function batchedClaimVmAction(
  db: Database,
  request: VmClaimRequest,
  options?: VmClaimOptions,
): Promise<VmClaimOutcome> {
  return batchesOf(db, options).claims.submit(request);
}
