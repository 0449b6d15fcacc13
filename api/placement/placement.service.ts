import type { Database } from '../../schema/db.js';
import type { PlacementPolicy } from '../../schema/index.js';
import { effectiveRole, roleAllows } from '../access/access.service.js';
import type { AuthUser } from '../auth/auth-user.js';
import { HttpError } from '../http/errors.js';
import { DEFAULT_PLACEMENT_POLICY, type ResourceInventory } from './inventory.js';
import { type LiveSummarySource, liveUsageFrom } from './live-usage.js';
import {
  type CandidateHost,
  type PlacementDecision,
  type PlacementRequest,
  place,
  type StoredDecision,
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

/**
 * 409 `no_host_available`: nothing in the hardware pool can take the VM now. To a caller who may list the hardware
 * pool's hosts (`showsHosts`) the message says why per host; to anyone else it names no host and gives no figure
 * of theirs (allocations, live free memory), nor how many hosts there are.
 */
export class NoHostError extends HttpError {
  constructor(
    readonly decision: PlacementDecision,
    showsHosts: boolean,
  ) {
    super(
      409,
      'no_host_available',
      showsHosts ? (decision.message ?? 'no host available') : hostlessMessage(decision),
      {
        policy: decision.policy,
        requestedHostId: decision.requestedHostId,
        ...(showsHosts ? { candidates: decision.candidates.length } : {}),
      },
    );
  }
}

/** Whether `user` may list the hosts of the hardware pool (those placement chooses from, and so explain). */
export async function showsHosts(db: Database, user: AuthUser, hardwarePoolId: number): Promise<boolean> {
  return roleAllows(user.isSuperAdmin ? 'super' : await effectiveRole(db, user, hardwarePoolId), 'view');
}

/**
 * A decision as shown to a caller who may not list the hardware pool's hosts: the request, the policy and the
 * outcome, without the candidates (names, reasons, allocations, live figures); a refusal says so in general.
 */
export function withoutHosts<
  T extends { candidates: unknown[]; chosenHostId: number | null; message?: string },
>(decision: T & { request: PlacementRequest; requestedHostId: number | null }): T {
  return {
    ...decision,
    candidates: [],
    ...(decision.message !== undefined ? { message: hostlessMessage(decision) } : {}),
  };
}

function hostlessMessage(decision: { request: PlacementRequest; requestedHostId: number | null }): string {
  const want = `${decision.request.vcpus} vCPUs and ${decision.request.memoryMiB} MiB`;
  const which =
    decision.requestedHostId !== null
      ? `the requested host cannot take ${want}`
      : `no host can take ${want} now`;
  return `${which} (the reasons per host are shown to those who may list the hardware pool's hosts)`;
}

/** The decision placement would make now, without claiming anything (GET /api/v1/vms/:id/placement). */
export async function explainPlacement(db: Database, input: PlacementInput): Promise<PlacementDecision> {
  return decide(await candidateHosts(db, input.vm.hardware_pool_ids), input);
}

/** The reason a host shows when a concurrent claim held it and the claim passed it over for the next one. */
export const BUSY_REASON = 'busy: a concurrent claim held it, the next host was tried';

/**
 * One eligible host as the claim (herd_vm_claim, migration T70) tries it: where it sits in the decision's
 * candidates, and for vCPUs and memory its capacity, total, reserved part and ratio.
 */
export interface HostClaim {
  id: number;
  entry: number;
  vcpus: [capacity: number, total: number, reserved: number, ratio: number];
  memoryMiB: [capacity: number, total: number, reserved: number, ratio: number];
}

/** The claim is given this many of the eligible hosts at a time, best first (the next ones only if none had room). */
export const HOSTS_PER_CLAIM = 8;

/**
 * What the claim tries, for a decision: `count` of its eligible hosts best first, after skipping the `from` best
 * (the claim is given a few at a time). If concurrent claims took a host's room meanwhile, it gives the reasons of
 * takenMeanwhileFormats. The claim locks each host's allocation row and checks allocated + request ≤ capacity
 * atomically with the VM's state change. Concurrent requests rank hosts alike, so they would all queue on the same
 * best host: a first round tries them without waiting (a host another claim holds is passed over, noted as busy),
 * a second waits on the busy ones in order. A host whose room a concurrent claim took is noted as such. The
 * decision kept on the VM shows all of it.
 */
export function hostClaims(
  decision: PlacementDecision,
  from = 0,
  count = Number.POSITIVE_INFINITY,
): HostClaim[] {
  const figures = (inv: ResourceInventory) =>
    [inv.capacity, inv.total, inv.reserved, inv.ratio] as [number, number, number, number];
  const hosts: HostClaim[] = [];
  let eligible = 0;
  decision.candidates.forEach((c, entry) => {
    if (!c.eligible || eligible++ < from || hosts.length >= count) return;
    hosts.push({
      id: c.hostId,
      entry,
      vcpus: figures(c.inventory.vcpus),
      memoryMiB: figures(c.inventory.memoryMiB),
    });
  });
  return hosts;
}

/**
 * The decision as a claim that found no host left it (`ended`: what it recorded per candidate — busy, taken
 * meanwhile), with no host chosen and a message saying why.
 */
export function unclaimedDecision(decision: PlacementDecision, ended: StoredDecision): PlacementDecision {
  const candidates = decision.candidates.map((c, i) => {
    const [, score, rank, reasons] = ended.candidates[i];
    return { ...c, eligible: score !== null, score, rank, reasons };
  });
  const failed: PlacementDecision = { ...decision, chosenHostId: null, candidates };
  failed.message ??= `every eligible host was taken by concurrent claims: ${candidates
    .slice(0, 5)
    .map((c) => `${c.hostname}: ${c.reasons.join('; ')}`)
    .join(' | ')}`;
  return failed;
}

/** Placement's choice among `hosts` for the input, explained (the preferred host first when eligible). */
export function decide(hosts: CandidateHost[], input: PlacementInput): PlacementDecision {
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
