import type { HostState, PlacementPolicy } from '../../schema/index.js';
import { fits, type HostInventoryRecord, hostInventory, type ResourceInventory } from './inventory.js';

/**
 * Host choice at start, restore and migrate: pure functions over host records, their allocations and the live
 * view, so that every decision can be explained (and tested) without a database.
 *
 * 1. Candidates: the hosts of the VM's hardware pool.
 * 2. Filters, each leaving a reason: disabled, unreachable, excluded (a migration's source), not the requested
 *    host (manual placement), no room by inventory (vCPUs, memory), no room by live usage (free memory now).
 * 3. Ranking of the rest by the pool's policy; ties go to the lower host id, so decisions are deterministic.
 */

export interface PlacementRequest {
  vcpus: number;
  memoryMiB: number;
}

export interface CandidateHost extends HostInventoryRecord {
  id: number;
  hostname: string;
  enabled: boolean;
  state: HostState;
}

/** What collectd says about a host right now (from the ingest live view). */
export interface LiveUsage {
  ageSeconds: number;
  memoryFreeMiB?: number;
  load1?: number;
  cpuBusyPercent?: number;
  cpuCount?: number;
}

export interface PlacementOptions {
  policy: PlacementPolicy;
  /** Live usage per host; undefined when there is none (or it is too old to trust). */
  live?: (host: CandidateHost) => LiveUsage | undefined;
  /** Manual placement: only this host may be chosen (it still gets every check). */
  requestedHostId?: number;
  /** Never chosen, e.g. the host a VM migrates away from. */
  excludeHostIds?: readonly number[];
}

export interface CandidateExplanation {
  hostId: number;
  hostname: string;
  state: HostState;
  enabled: boolean;
  eligible: boolean;
  /** Why the host was filtered out; empty when eligible. */
  reasons: string[];
  /** Higher is better; null when filtered. */
  score: number | null;
  /** 1 for the chosen host; null when filtered. */
  rank: number | null;
  inventory: { vcpus: ResourceInventory; memoryMiB: ResourceInventory };
  live: LiveUsage | null;
}

export interface PlacementDecision {
  policy: PlacementPolicy;
  request: PlacementRequest;
  requestedHostId: number | null;
  chosenHostId: number | null;
  /** Eligible hosts best first, then the filtered ones by id. */
  candidates: CandidateExplanation[];
  /** Why nothing could be chosen (absent when a host was chosen). */
  message?: string;
}

const UNREACHABLE: ReadonlySet<HostState> = new Set(['unreachable', 'down']);

export function explainCandidate(
  host: CandidateHost,
  request: PlacementRequest,
  options: PlacementOptions,
): CandidateExplanation {
  const inventory = hostInventory(host);
  const live = options.live?.(host) ?? null;
  const reasons: string[] = [];
  if (options.requestedHostId !== undefined && host.id !== options.requestedHostId) {
    reasons.push(`not the requested host ${options.requestedHostId}`);
  }
  if (options.excludeHostIds?.includes(host.id)) reasons.push('excluded: the VM is already on this host');
  if (!host.enabled) reasons.push('disabled');
  if (UNREACHABLE.has(host.state)) reasons.push(`host is ${host.state}`);
  if (!fits(inventory.vcpus, request.vcpus))
    reasons.push(noRoom('vCPUs', '', inventory.vcpus, request.vcpus));
  if (!fits(inventory.memoryMiB, request.memoryMiB)) {
    reasons.push(noRoom('memory', ' MiB', inventory.memoryMiB, request.memoryMiB));
  }
  if (live?.memoryFreeMiB !== undefined && live.memoryFreeMiB < request.memoryMiB) {
    reasons.push(
      `live usage: ${Math.floor(live.memoryFreeMiB)} MiB free now < ${request.memoryMiB} MiB requested`,
    );
  }
  const eligible = reasons.length === 0;
  return {
    hostId: host.id,
    hostname: host.hostname,
    state: host.state,
    enabled: host.enabled,
    eligible,
    reasons,
    score: eligible ? round(score(options.policy, inventory, request, live)) : null,
    rank: null,
    inventory,
    live,
  };
}

/** The figures a "no room" reason names (numbers, or the claim's format() placeholders). */
type RoomFigures = Record<'allocated' | 'capacity' | 'total' | 'reserved' | 'ratio', number | string>;

function noRoom(what: string, unit: string, inv: RoomFigures, request: number): string {
  return (
    `no room for ${what}: ${inv.allocated}${unit} allocated + ${request}${unit} requested > ${inv.capacity}${unit} ` +
    `capacity ((${inv.total} − ${inv.reserved} reserved) × ${inv.ratio})`
  );
}

/** Share of a resource still free once the request is placed, 0..1. */
function freeShareAfter(inv: ResourceInventory, request: number): number {
  return inv.capacity > 0 ? Math.max(0, inv.capacity - inv.allocated - request) / inv.capacity : 0;
}

/**
 * - spread: most free room after placing (mean of the vCPU and memory shares);
 * - pack: least free room after placing (fill hosts up before using the next);
 * - load: lowest live load per CPU and CPU busy share; hosts without live figures rank below those with
 *   (negative scores), among themselves by spread.
 */
function score(
  policy: PlacementPolicy,
  inv: { vcpus: ResourceInventory; memoryMiB: ResourceInventory },
  request: PlacementRequest,
  live: LiveUsage | null,
): number {
  const free =
    (freeShareAfter(inv.vcpus, request.vcpus) + freeShareAfter(inv.memoryMiB, request.memoryMiB)) / 2;
  if (policy === 'spread') return free;
  if (policy === 'pack') return 1 - free;
  const cpus = live?.cpuCount ?? inv.vcpus.total;
  const parts: number[] = [];
  if (live?.load1 !== undefined && cpus > 0) parts.push(Math.min(live.load1 / cpus, 2) / 2);
  if (live?.cpuBusyPercent !== undefined) parts.push(Math.min(Math.max(live.cpuBusyPercent, 0), 100) / 100);
  if (!parts.length) return free - 2;
  return 1 - parts.reduce((a, b) => a + b, 0) / parts.length;
}

/** A refusal names this many hosts; the placement endpoint explains all of them. */
const MESSAGE_HOSTS = 5;

const round = (n: number) => Math.round(n * 1e4) / 1e4;

/** Explains every candidate and chooses the best eligible one (or none, with a message). */
export function place(
  hosts: CandidateHost[],
  request: PlacementRequest,
  options: PlacementOptions,
): PlacementDecision {
  const explained = hosts.map((h) => explainCandidate(h, request, options));
  const eligible = explained
    .filter((c) => c.eligible)
    .sort((a, b) => b.score! - a.score! || a.hostId - b.hostId);
  eligible.forEach((c, i) => {
    c.rank = i + 1;
  });
  const filtered = explained.filter((c) => !c.eligible).sort((a, b) => a.hostId - b.hostId);
  const decision: PlacementDecision = {
    policy: options.policy,
    request,
    requestedHostId: options.requestedHostId ?? null,
    chosenHostId: eligible[0]?.hostId ?? null,
    candidates: [...eligible, ...filtered],
  };
  if (!eligible.length) decision.message = noHostMessage(explained, request, options);
  return decision;
}

function noHostMessage(
  explained: CandidateExplanation[],
  request: PlacementRequest,
  options: PlacementOptions,
): string {
  const want = `${request.vcpus} vCPUs and ${request.memoryMiB} MiB`;
  if (options.requestedHostId !== undefined) {
    const host = explained.find((c) => c.hostId === options.requestedHostId);
    if (!host) return `host ${options.requestedHostId} is not in the VM's hardware pool`;
    return `host ${host.hostname} (${host.hostId}) cannot take ${want}: ${host.reasons.join('; ')}`;
  }
  if (!explained.length) return `no host in the VM's hardware pool to place ${want}`;
  const shown = explained
    .slice(0, MESSAGE_HOSTS)
    .map((c) => `${c.hostname} (${c.hostId}): ${c.reasons.join('; ')}`)
    .join(' | ');
  const more = explained.length > MESSAGE_HOSTS ? ` | and ${explained.length - MESSAGE_HOSTS} more` : '';
  return `no host can take ${want}: ${shown}${more} (GET /api/v1/vms/:id/placement explains every host)`;
}

/**
 * Why an eligible host could not be claimed after all, once locked with what concurrent claims left on it (the
 * claim's second look; only the room can have changed since the decision, made from the same host record): the
 * vCPU and the memory reason as PostgreSQL format() strings, filled in by the claim (herd_vm_claim) with the
 * host's figures — %1$s allocated then, %2$s capacity, %3$s total, %4$s reserved, %5$s ratio.
 */
export function takenMeanwhileFormats(request: PlacementRequest): { vcpus: string; memoryMiB: string } {
  const slots = ['allocated', 'capacity', 'total', 'reserved', 'ratio'] as const;
  const marks = Object.fromEntries(slots.map((slot, i) => [slot, `\uE000${i + 1}`])) as RoomFigures;
  const format = (text: string) =>
    text.replaceAll('%', '%%').replace(/\uE000(\d)/g, (_, n: string) => `%${n}$s`);
  return {
    vcpus: format(`taken meanwhile: ${noRoom('vCPUs', '', marks, request.vcpus)}`),
    memoryMiB: format(`taken meanwhile: ${noRoom('memory', ' MiB', marks, request.memoryMiB)}`),
  };
}

/**
 * A decision as kept on the VM after each claim: every candidate's score, rank and reasons, without the inventory
 * and live figures (those are in the hypothetical explanation). Small enough to write with every claim.
 */
export interface StoredDecision {
  action: string;
  decidedAt: string;
  policy: PlacementPolicy;
  request: PlacementRequest;
  requestedHostId: number | null;
  chosenHostId: number | null;
  message?: string;
  /** [hostId, score, rank, reasons] per candidate, in the decision's order. */
  candidates: Array<[number, number | null, number | null, string[]]>;
}

export function storedDecision(
  decision: PlacementDecision,
  meta: { action: string; decidedAt: Date },
): StoredDecision {
  return {
    action: meta.action,
    decidedAt: meta.decidedAt.toISOString(),
    policy: decision.policy,
    request: decision.request,
    requestedHostId: decision.requestedHostId,
    chosenHostId: decision.chosenHostId,
    ...(decision.message ? { message: decision.message } : {}),
    candidates: decision.candidates.map((c) => [c.hostId, c.score, c.rank, c.reasons]),
  };
}

/** A stored decision in the explanation's shape, hosts named (those removed since keep their id only). */
export function expandDecision(stored: StoredDecision, hostnames: ReadonlyMap<number, string>) {
  const { candidates, ...rest } = stored;
  return {
    ...rest,
    candidates: candidates.map(([hostId, score, rank, reasons]) => ({
      hostId,
      hostname: hostnames.get(hostId) ?? `host ${hostId}`,
      eligible: reasons.length === 0,
      reasons,
      score,
      rank,
    })),
  };
}
