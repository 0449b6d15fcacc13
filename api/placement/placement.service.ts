import type { Database } from '../../lib/db.js';
import type { PlacementPolicy } from '../../schema/index.js';
import { HttpError } from '../http/errors.js';
import { DEFAULT_PLACEMENT_POLICY } from './inventory.js';
import { type LiveSummarySource, liveUsageFrom } from './live-usage.js';
import {
  type CandidateExplanation,
  type CandidateHost,
  type PlacementDecision,
  type PlacementRequest,
  place,
  recheck,
} from './placement.js';
import { candidateHosts } from './placement.repository.js';

export interface PlacementInput {
  vm: { id: number; hardware_pool_ids: number[]; placement_policy: PlacementPolicy | null };
  request: PlacementRequest;
  /** Manual placement. */
  hostId?: number;
  /** Never chosen (a migration's source). */
  excludeHostIds?: number[];
  /** Chosen when eligible, whatever the ranking (a saved VM goes back where its image is). */
  preferHostId?: number;
  live?: LiveSummarySource;
}

/** 409 `no_host_available`: nothing in the hardware pool can take the VM now; the message says why per host. */
export class NoHostError extends HttpError {
  constructor(readonly decision: PlacementDecision) {
    super(409, 'no_host_available', decision.message ?? 'no host available', {
      policy: decision.policy,
      requestedHostId: decision.requestedHostId,
      candidates: decision.candidates.length,
    });
  }
}

/** The decision placement would make now, without claiming anything (GET /api/v1/vms/:id/placement). */
export async function explainPlacement(db: Database, input: PlacementInput): Promise<PlacementDecision> {
  return decide(await candidateHosts(db, input.vm.hardware_pool_ids), input);
}

/**
 * What a claim attempt on one host answers: done; or the host's allocation that left no room; or busy (another
 * claim held the host and the attempt was not to wait).
 */
export type ClaimAttempt<T> =
  | { claimed: true; value: T }
  | { claimed: false; allocated?: { vcpus: number; memoryMiB: number } };

/**
 * Chooses a host from `hosts` (read in the caller's transaction) and claims room on it through `tryClaim`, which
 * locks the host's allocation and checks allocated + request ≤ capacity atomically with the VM's state change.
 *
 * Concurrent requests rank hosts alike, so they would all queue on the same best host: the first round tries the
 * eligible hosts best first without waiting (a host another claim holds is passed over, noted as busy), the
 * second waits on the busy ones in order. A host whose room a concurrent claim took is noted as such. Throws
 * NoHostError when none is left. `tryClaim` gets the decision as it stands, with that host chosen, to record it.
 */
export async function chooseAndClaim<T>(
  hosts: CandidateHost[],
  input: PlacementInput,
  tryClaim: (
    candidate: CandidateExplanation,
    decision: PlacementDecision,
    wait: boolean,
  ) => Promise<ClaimAttempt<T>>,
): Promise<{ decision: PlacementDecision; value: T }> {
  const decision = decide(hosts, input);
  const options = { policy: decision.policy, live: liveUsageFrom(input.live) };
  const eligible = decision.candidates.filter((c) => c.eligible);
  const busy: CandidateExplanation[] = [];
  for (const [round, candidates] of [
    [1, eligible],
    [2, busy],
  ] as const) {
    for (const candidate of [...candidates]) {
      if (round === 2) candidate.reasons = [];
      const chosen = { ...decision, chosenHostId: candidate.hostId };
      const attempt = await tryClaim(candidate, chosen, round === 2);
      if (attempt.claimed) return { decision: chosen, value: attempt.value };
      if (!attempt.allocated) {
        busy.push(candidate);
        candidate.reasons = ['busy: a concurrent claim held it, the next host was tried'];
        continue;
      }
      const host = hosts.find((h) => h.id === candidate.hostId)!;
      const now = {
        ...host,
        allocatedVcpus: attempt.allocated.vcpus,
        allocatedMemoryMiB: attempt.allocated.memoryMiB,
      };
      Object.assign(candidate, {
        eligible: false,
        score: null,
        rank: null,
        reasons: recheck(now, input.request, options).map((r) => `taken meanwhile: ${r}`),
      });
    }
  }
  const failed: PlacementDecision = { ...decision, chosenHostId: null };
  failed.message ??= `every eligible host was taken by concurrent claims: ${decision.candidates
    .slice(0, 5)
    .map((c) => `${c.hostname}: ${c.reasons.join('; ')}`)
    .join(' | ')}`;
  throw new NoHostError(failed);
}

function decide(hosts: CandidateHost[], input: PlacementInput): PlacementDecision {
  const decision = place(hosts, input.request, {
    policy: input.vm.placement_policy ?? DEFAULT_PLACEMENT_POLICY,
    live: liveUsageFrom(input.live),
    requestedHostId: input.hostId,
    excludeHostIds: input.excludeHostIds,
  });
  if (input.preferHostId !== undefined && input.hostId === undefined) {
    const i = decision.candidates.findIndex((c) => c.hostId === input.preferHostId && c.eligible);
    if (i > 0) {
      const [preferred] = decision.candidates.splice(i, 1);
      decision.candidates.unshift(preferred);
      decision.candidates.forEach((c, rank) => {
        if (c.eligible) c.rank = rank + 1;
      });
      decision.chosenHostId = preferred.hostId;
    }
  }
  return decision;
}
