import { fits, hostInventory, type ResourceInventory } from '../placement/inventory.js';
import type { CandidateHost } from '../placement/placement.js';

/**
 * The balancer's decision for one hardware pool and one cycle (issue 26): pure, no I/O. Given a snapshot of the
 * pool (hosts with their recent live samples, VMs with their live use, the settings) and `now`, it returns the
 * moves it recommends, each with a reason a person can check, and the pool's imbalance before and after.
 *
 * Imbalance: the coefficient of variation (standard deviation / mean) of the hosts' weighted load, over the enabled
 * hosts that are up and report live figures. A host's load, 0..1, weighs like OpenNebula's OneDRS: CPU usage
 * (window average, 30 % of it from the forecast where one is given), CPU allocation (allocated vCPUs / vCPU
 * capacity) and memory (used / usable). herd's weights are CPU usage 0.6, CPU allocation 0.1, memory 0.3 (OneDRS:
 * 0.2 / 0.2 / 0.6): herd's sources are hosts whose CPU is hot, and memory a guest once touched stays used, so
 * moving idle memory-heavy guests would relieve nothing.
 *
 * A move is recommended only when all of these hold:
 * - its source is hot: CPU ≥ highCpuPercent (or memory ≥ highMemoryPercent) at every sample of the whole window,
 *   counting only samples taken after the host's last migration ended (so a host is not relieved twice from the
 *   same figures);
 * - the VM is not pinned, not migrating, not moved within the cool-down, not in its failed-migration back-off, and
 *   has live figures (its CPU counted at most up to its CPU limit);
 * - the destination is enabled, up, settled (a sample since its last migration), physically large enough for the
 *   VM alone (the per-host form of herd's largest-host rule), has room by inventory (vCPUs and memory with its
 *   allocation ratios and reservations: placement's `fits`) and live memory, and stays at or below
 *   highCpuPercent − hysteresisPercent at its window's CPU peak plus the VM (it will not be the next source), and
 *   its load stays at or below the source's (no inversion);
 * - it lowers the imbalance by at least minGain plus its cost (costPerGiB per GiB of memory to copy), the gain
 *   being n · m₀² · (CV² before − CV² after), with n hosts of mean load m₀ at the start of the cycle: for hosts of
 *   one size it is the drop in Σ(load − mean)², so it does not shrink as the pool grows;
 * - at most maxConcurrentMigrations are in flight in the pool (those running count) and maxMigrationsPerHost on
 *   any host, as source or destination.
 * Moves are chosen greedily: first those that bring their source under the threshold it is hot by (CPU or memory),
 * among them the best net gain (gain − cost). Every accepted move lowers the imbalance, so a `balance` plan never
 * leaves the pool more imbalanced than it found it.
 *
 * `pack` (power saving) first relieves hot hosts as above, then empties hosts whose CPU stayed ≤ lowCpuPercent
 * for the whole window, lightest first, onto the fullest hosts that stay ≤ packMaxCpuPercent: a host is chosen only
 * when every one of its VMs has a place (the rest are moved in later cycles, within the same caps); hosts left
 * without VMs are listed "empty, can power off". Hot-host relief never sends a VM to a host being emptied.
 */

export type BalancerMode = 'off' | 'recommend' | 'automatic';
export type BalancerPolicy = 'balance' | 'pack';

export interface BalancerWeights {
  cpuUsage: number;
  cpuAllocation: number;
  memory: number;
}

export interface BalancerSettings {
  mode: BalancerMode;
  policy: BalancerPolicy;
  /** A source must have been hot for this long (every sample), and a host cold for this long to be emptied. */
  windowSeconds: number;
  highCpuPercent: number;
  highMemoryPercent: number;
  /** Destinations stay at or below high − this (CPU at its window peak plus the VM, and memory). */
  hysteresisPercent: number;
  /** `pack`: hosts whose CPU stayed at or below this for the whole window are emptied. */
  lowCpuPercent: number;
  /** `pack`: an emptied host's VMs go to hosts that stay at or below this CPU. */
  packMaxCpuPercent: number;
  /** A VM moved is not moved again for this long. */
  coolDownSeconds: number;
  /** After a failed migration the VM waits this long, doubled for each further failure in a row, at most the max. */
  failureBackoffSeconds: number;
  maxFailureBackoffSeconds: number;
  /** Migrations in flight in the pool at any time, those already running included. */
  maxConcurrentMigrations: number;
  /** Migrations in flight per host, as source or destination. */
  maxMigrationsPerHost: number;
  /** The least gain a move must bring beyond its cost (see the module comment for the unit). */
  minGain: number;
  /** The cost of a move per GiB of memory to copy, in the gain's unit. */
  costPerGiB: number;
  weights: BalancerWeights;
  /** The share of the CPU usage taken from the forecast, where one is given. */
  forecastShare: number;
}

/**
 * Conservative defaults, for an operator burnt by a bad DRS: off until turned on; a host must be hot for 5 minutes
 * (oVirt: 75 % for 2 minutes) at 80 %; destinations stay 10 points under that; a VM moved stays put for an hour;
 * a failed migration waits 15 minutes, doubling to 4 hours; 2 migrations at a time in the pool, 1 per host; a move
 * must be worth at least 0.01 (e.g. 5 % of a host's load from 15 points over the mean to 15 under gives 0.025)
 * plus 0.0005 per GiB copied (a 16 GiB guest: 0.008).
 */
export const DEFAULT_BALANCER_SETTINGS: BalancerSettings = {
  mode: 'off',
  policy: 'balance',
  windowSeconds: 300,
  highCpuPercent: 80,
  highMemoryPercent: 90,
  hysteresisPercent: 10,
  lowCpuPercent: 20,
  packMaxCpuPercent: 60,
  coolDownSeconds: 3600,
  failureBackoffSeconds: 900,
  maxFailureBackoffSeconds: 14_400,
  maxConcurrentMigrations: 2,
  maxMigrationsPerHost: 1,
  minGain: 0.01,
  costPerGiB: 0.0005,
  weights: { cpuUsage: 0.6, cpuAllocation: 0.1, memory: 0.3 },
  forecastShare: 0.3,
};

/** A live sample of a host: `at` in ms since the epoch, CPU busy in % of all its CPUs, memory used. */
export interface HostSample {
  at: number;
  cpuPercent: number;
  memoryUsedMiB?: number;
}

export interface BalancerHost extends CandidateHost {
  /** Recent samples, oldest first, reaching back at least one window. */
  samples: readonly HostSample[];
  /** Predicted CPU busy % for the coming window, where the forecast has one. */
  forecastCpuPercent?: number;
  /** When the last migration to or from the host ended, ms since the epoch. */
  lastMigrationAt?: number;
}

export interface BalancerVm {
  id: number;
  name?: string;
  hostId: number;
  vcpus: number;
  memoryMiB: number;
  /** Live CPU use averaged over the window, in host CPUs (1.5: one and a half CPUs busy). */
  cpuCores?: number;
  /** Live memory the guest holds (what a migration copies); its size when unknown. */
  memoryUsedMiB?: number;
  pinned: boolean;
  /** Effective CPU limit, % of each vCPU: the VM never brings more than this to a destination. */
  cpuLimitPercent?: number | null;
  lastMovedAt?: number;
  /** Consecutive failed migrations, and when the last one failed. */
  failedMigrations?: number;
  lastFailedMigrationAt?: number;
  /** Set while the VM migrates (counts against the caps). */
  migratingToHostId?: number | null;
}

export interface PoolSnapshot {
  hosts: readonly BalancerHost[];
  vms: readonly BalancerVm[];
  settings: BalancerSettings;
  now: number;
}

export interface Recommendation {
  vmId: number;
  fromHostId: number;
  toHostId: number;
  reason: string;
  imbalanceBefore: number;
  imbalanceAfter: number;
  gain: number;
  cost: number;
  /** `relieve` a hot host, or `empty` a host (pack). */
  kind: 'relieve' | 'empty';
}

export interface BalancePlan {
  mode: BalancerMode;
  policy: BalancerPolicy;
  /** Whether the moves are to be carried out now (mode `automatic`); otherwise they are recommendations only. */
  execute: boolean;
  imbalance: number;
  imbalanceAfter: number;
  recommendations: Recommendation[];
  /** `pack`: hosts left without VMs once the moves are done. */
  emptyHosts: Array<{ hostId: number; reason: string }>;
  /** Why hosts that look hot or cold got no move (yet). */
  notes: string[];
  migrationsInFlight: number;
}

interface VmView {
  vm: BalancerVm;
  cores: number | undefined;
  copyMiB: number;
  refusal: string | undefined;
}

interface HostView {
  host: BalancerHost;
  name: string;
  vcpus: ResourceInventory;
  memory: ResourceInventory;
  memoryUsableMiB: number;
  usable: boolean;
  settled: boolean;
  cpuAvg: number;
  cpuPeak: number;
  forecast: number | undefined;
  memoryUsedMiB: number;
  hot: 'CPU' | 'memory' | undefined;
  hotSeconds: number;
  /** Over a threshold now, but not for the whole window: why it waits. */
  waiting: string | undefined;
  cold: boolean;
  inFlight: number;
  vms: VmView[];
  load: number;
  /** Room promised to VMs of hosts being emptied in later cycles (pack). */
  reserved: { vcpus: number; memoryMiB: number; usedMiB: number; cpuPercent: number };
}

const UP = 'up';
/** Feasible destinations tried per VM (lowest load first), and destinations looked at in all. */
const TRIED_PER_VM = 16;
const LOOKED_AT_PER_VM = 64;

export function planBalance(snapshot: PoolSnapshot): BalancePlan {
  const { settings: s, now } = snapshot;
  const hosts = new Map<number, HostView>();
  for (const h of [...snapshot.hosts].sort((a, b) => a.id - b.id)) hosts.set(h.id, hostView(h, s, now));
  let inFlight = 0;
  for (const vm of snapshot.vms) {
    if (vm.migratingToHostId == null) continue;
    inFlight++;
    for (const id of [vm.hostId, vm.migratingToHostId]) {
      const h = hosts.get(id);
      if (h) h.inFlight++;
    }
  }
  for (const vm of [...snapshot.vms].sort((a, b) => a.id - b.id)) {
    hosts.get(vm.hostId)?.vms.push(vmView(vm, s, now));
  }
  const pool = [...hosts.values()].filter((h) => h.usable);
  for (const h of pool) h.load = load(h, s);
  const stats = { n: pool.length, sum: 0, sum2: 0 };
  for (const h of pool) {
    stats.sum += h.load;
    stats.sum2 += h.load * h.load;
  }
  const m0 = stats.n ? stats.sum / stats.n : 0;
  const scale = stats.n * m0 * m0;
  const before = cv(stats);
  const notes: string[] = [];
  const recommendations: Recommendation[] = [];
  const ctx: Ctx = { s, stats, scale, recommendations, inFlight, now };

  const emptying = s.policy === 'pack' ? chooseHostsToEmpty(pool, ctx, notes) : [];
  const beingEmptied = new Set(emptying.map((e) => e.host));
  relieve(pool, beingEmptied, ctx, notes);
  if (s.policy === 'pack') emitEvacuations(emptying, ctx, notes);

  const emptyHosts: BalancePlan['emptyHosts'] = [];
  if (s.policy === 'pack') {
    for (const h of pool) {
      if (h.vms.length === 0 && h.vcpus.allocated <= 0 && h.memory.allocated <= 0) {
        const moving = recommendations.filter((r) => r.fromHostId === h.host.id).length;
        emptyHosts.push({
          hostId: h.host.id,
          reason: `host ${h.name}: ${moving ? `empty once its ${moving} VM(s) have moved` : 'empty'}, can power off`,
        });
      }
    }
  }
  return {
    mode: s.mode,
    policy: s.policy,
    execute: s.mode === 'automatic',
    imbalance: round3(before),
    imbalanceAfter: round3(cv(stats)),
    recommendations,
    emptyHosts,
    notes,
    migrationsInFlight: inFlight,
  };
}

interface Ctx {
  s: BalancerSettings;
  stats: { n: number; sum: number; sum2: number };
  scale: number;
  recommendations: Recommendation[];
  inFlight: number;
  now: number;
}

function hostView(h: BalancerHost, s: BalancerSettings, now: number): HostView {
  const inv = hostInventory(h);
  const memoryUsableMiB = Math.max(1, h.memoryMiB - h.reservedMemoryMiB);
  const windowStart = now - s.windowSeconds * 1000;
  const samples = h.samples.filter((x) => x.at <= now);
  const latest = samples.at(-1);
  const view: HostView = {
    host: h,
    name: h.hostname ? `${h.hostname} (${h.id})` : String(h.id),
    vcpus: { ...inv.vcpus },
    memory: { ...inv.memoryMiB },
    memoryUsableMiB,
    usable: false,
    settled: false,
    cpuAvg: 0,
    cpuPeak: 0,
    forecast: h.forecastCpuPercent,
    memoryUsedMiB: latest?.memoryUsedMiB ?? inv.memoryMiB.allocated,
    hot: undefined,
    hotSeconds: 0,
    waiting: undefined,
    cold: false,
    inFlight: 0,
    vms: [],
    load: 0,
    reserved: { vcpus: 0, memoryMiB: 0, usedMiB: 0, cpuPercent: 0 },
  };
  // Figures older than a window are no live figures: such a host takes no part (neither counted nor moved).
  view.usable = h.enabled && h.state === UP && latest !== undefined && latest.at > windowStart;
  if (!view.usable) return view;
  const settledSamples = samples.filter((x) => x.at > (h.lastMigrationAt ?? Number.NEGATIVE_INFINITY));
  view.settled = settledSamples.length > 0;
  const inWindow = samples.filter((x) => x.at > windowStart);
  view.cpuAvg = inWindow.reduce((a, x) => a + x.cpuPercent, 0) / inWindow.length;
  view.cpuPeak = Math.max(...inWindow.map((x) => x.cpuPercent));
  const memPercent = (x: HostSample) =>
    x.memoryUsedMiB === undefined ? undefined : (x.memoryUsedMiB / memoryUsableMiB) * 100;
  const cpuHot = (x: HostSample) => x.cpuPercent >= s.highCpuPercent;
  const memHot = (x: HostSample) => (memPercent(x) ?? 0) >= s.highMemoryPercent;
  // The sample at or before the window's start covers it: the host must be over from then to now.
  let cover = -1;
  for (let i = settledSamples.length - 1; i >= 0; i--) {
    if (settledSamples[i].at <= windowStart) {
      cover = i;
      break;
    }
  }
  const over = (test: (x: HostSample) => boolean) => {
    let j = settledSamples.length;
    while (j > 0 && test(settledSamples[j - 1])) j--;
    if (j === settledSamples.length) return { whole: false, seconds: 0 };
    return {
      whole: cover >= 0 && j <= cover,
      seconds: (now - settledSamples[Math.max(j, 0)].at) / 1000,
    };
  };
  const cpu = over(cpuHot);
  const mem = over(memHot);
  if (cpu.whole) view.hot = 'CPU';
  else if (mem.whole) view.hot = 'memory';
  view.hotSeconds = view.hot === 'CPU' ? cpu.seconds : view.hot === 'memory' ? mem.seconds : 0;
  if (!view.hot && (cpu.seconds > 0 || mem.seconds > 0)) {
    const what = cpu.seconds > 0 ? 'CPU' : 'memory';
    const seconds = Math.max(cpu.seconds, mem.seconds);
    view.waiting =
      `host ${view.name}: ${what} over ${what === 'CPU' ? s.highCpuPercent : s.highMemoryPercent} % ` +
      `for ${minutes(seconds)} of the ${minutes(s.windowSeconds)} window (or since its last migration): waiting`;
  }
  view.cold =
    s.policy === 'pack' &&
    cover >= 0 &&
    settledSamples.slice(cover).every((x) => x.cpuPercent <= s.lowCpuPercent);
  return view;
}

function vmView(vm: BalancerVm, s: BalancerSettings, now: number): VmView {
  const limit = vm.cpuLimitPercent == null ? vm.vcpus : (vm.vcpus * Math.max(0, vm.cpuLimitPercent)) / 100;
  const cores = vm.cpuCores === undefined ? undefined : Math.max(0, Math.min(vm.cpuCores, vm.vcpus, limit));
  const copyMiB = Math.min(vm.memoryUsedMiB ?? vm.memoryMiB, vm.memoryMiB);
  let refusal: string | undefined;
  if (vm.pinned) refusal = 'pinned';
  else if (vm.migratingToHostId != null) refusal = 'migrating now';
  else if (vm.lastMovedAt !== undefined && now - vm.lastMovedAt < s.coolDownSeconds * 1000) {
    refusal = `moved ${minutes((now - vm.lastMovedAt) / 1000)} ago (cool-down ${minutes(s.coolDownSeconds)})`;
  } else if (vm.failedMigrations && vm.lastFailedMigrationAt !== undefined) {
    const backoff = Math.min(
      s.failureBackoffSeconds * 2 ** (vm.failedMigrations - 1),
      s.maxFailureBackoffSeconds,
    );
    if (now - vm.lastFailedMigrationAt < backoff * 1000) {
      refusal = `${vm.failedMigrations} failed migration(s), backing off ${minutes(backoff)}`;
    }
  } else if (cores === undefined) refusal = 'no live CPU figure';
  return { vm, cores, copyMiB, refusal };
}

function load(h: HostView, s: BalancerSettings): number {
  return loadFrom(s, h, h.cpuAvg, h.forecast, h.vcpus.allocated, h.memoryUsedMiB);
}

function loadFrom(
  s: BalancerSettings,
  h: HostView,
  cpuAvg: number,
  forecast: number | undefined,
  allocatedVcpus: number,
  memoryUsedMiB: number,
): number {
  const cpu = forecast === undefined ? cpuAvg : (1 - s.forecastShare) * cpuAvg + s.forecastShare * forecast;
  const alloc = h.vcpus.capacity > 0 ? allocatedVcpus / h.vcpus.capacity : 1;
  const w = s.weights;
  return (
    (w.cpuUsage * Math.max(0, cpu)) / 100 +
    w.cpuAllocation * alloc +
    (w.memory * memoryUsedMiB) / h.memoryUsableMiB
  );
}

function cv(st: { n: number; sum: number; sum2: number }): number {
  if (st.n === 0 || st.sum <= 0) return 0;
  const mean = st.sum / st.n;
  return Math.sqrt(Math.max(0, st.sum2 / st.n - mean * mean)) / mean;
}

/** The changes a move makes to its two hosts. */
function delta(vm: VmView, h: HostView) {
  return {
    cpuPercent: ((vm.cores ?? 0) / Math.max(1, h.host.cpus)) * 100,
    vcpus: vm.vm.vcpus,
    memoryMiB: vm.vm.memoryMiB,
    usedMiB: vm.copyMiB,
  };
}

function shift(h: HostView, vm: VmView, sign: 1 | -1, s: BalancerSettings) {
  const d = delta(vm, h);
  h.cpuAvg += sign * d.cpuPercent;
  h.cpuPeak += sign * d.cpuPercent;
  if (h.forecast !== undefined) h.forecast += sign * d.cpuPercent;
  h.vcpus.allocated += sign * d.vcpus;
  h.memory.allocated += sign * d.memoryMiB;
  h.memoryUsedMiB += sign * d.usedMiB;
  h.load = load(h, s);
}

/** The load a host would have with the VM added (+1) or taken away (−1). */
function loadWith(h: HostView, vm: VmView, sign: 1 | -1, s: BalancerSettings): number {
  const d = delta(vm, h);
  return loadFrom(
    s,
    h,
    h.cpuAvg + sign * d.cpuPercent,
    h.forecast === undefined ? undefined : h.forecast + sign * d.cpuPercent,
    h.vcpus.allocated + sign * d.vcpus,
    h.memoryUsedMiB + sign * d.usedMiB,
  );
}

/** Why `vm` may not go to `d`; undefined when it may. `cpuCeiling`: the most CPU `d` may show after the move. */
function refusal(
  vm: VmView,
  d: HostView,
  cpuCeiling: number,
  ctx: Ctx,
  withReserved: boolean,
): string | undefined {
  const s = ctx.s;
  if (!d.settled) return 'no live figures since its last migration';
  if (vm.vm.vcpus > d.host.cpus || vm.vm.memoryMiB > d.host.memoryMiB) return 'smaller than the VM';
  const r = withReserved ? d.reserved : { vcpus: 0, memoryMiB: 0, usedMiB: 0, cpuPercent: 0 };
  if (!fits(d.vcpus, vm.vm.vcpus + r.vcpus) || !fits(d.memory, vm.vm.memoryMiB + r.memoryMiB))
    return 'no room';
  const add = delta(vm, d);
  if (
    ((d.memoryUsedMiB + r.usedMiB + add.usedMiB) / d.memoryUsableMiB) * 100 >
    s.highMemoryPercent - s.hysteresisPercent
  )
    return 'memory would be too high';
  if (d.cpuPeak + r.cpuPercent + add.cpuPercent > cpuCeiling) return 'CPU would be too high';
  return undefined;
}

interface Candidate {
  vm: VmView;
  from: HostView;
  to: HostView;
  gain: number;
  cost: number;
  after: number;
  /** Whether the move brings its source's hot resource under the threshold. */
  cools?: boolean;
}

/** The pool's CV if `vm` went from `from` to `to`, and the move's gain in the unit of minGain. */
function evaluate(vm: VmView, from: HostView, to: HostView, ctx: Ctx) {
  const { s, stats } = ctx;
  const lf = loadWith(from, vm, -1, s);
  const lt = loadWith(to, vm, 1, s);
  const sum = stats.sum - from.load - to.load + lf + lt;
  const sum2 = stats.sum2 - from.load ** 2 - to.load ** 2 + lf * lf + lt * lt;
  const before = cv(stats);
  const after = cv({ n: stats.n, sum, sum2 });
  return { gain: ctx.scale * (before * before - after * after), after, lf, lt };
}

const cost = (vm: VmView, s: BalancerSettings) => (vm.copyMiB / 1024) * s.costPerGiB;

function roomLeft(ctx: Ctx) {
  return ctx.s.maxConcurrentMigrations - ctx.inFlight - ctx.recommendations.length;
}

const perHostRoom = (h: HostView, ctx: Ctx) => h.inFlight < ctx.s.maxMigrationsPerHost;

/** Greedy relief of hot hosts: the best net gain first, until no move is worth it or the caps are reached. */
function relieve(pool: HostView[], exclude: ReadonlySet<HostView>, ctx: Ctx, notes: string[]) {
  const s = ctx.s;
  const ceiling = s.highCpuPercent - s.hysteresisPercent;
  const relieved = new Set<HostView>();
  for (const h of pool) if (h.waiting) notes.push(h.waiting);
  while (roomLeft(ctx) > 0) {
    const sources = pool.filter((h) => h.hot && perHostRoom(h, ctx));
    if (!sources.length) break;
    const dests = pool
      .filter((h) => !h.hot && !exclude.has(h) && perHostRoom(h, ctx) && h.settled)
      .sort((a, b) => a.load - b.load || a.host.id - b.host.id);
    let best: Candidate | undefined;
    for (const from of sources) {
      for (const vm of from.vms) {
        if (vm.refusal) continue;
        let tried = 0;
        let looked = 0;
        for (const to of dests) {
          if (to === from) continue;
          if (++looked > LOOKED_AT_PER_VM || tried >= TRIED_PER_VM) break;
          if (refusal(vm, to, ceiling, ctx, true)) continue;
          tried++;
          const e = evaluate(vm, from, to, ctx);
          if (e.lt > e.lf) continue; // the destination would be the next source
          const c = cost(vm, s);
          if (e.gain < s.minGain + c) continue;
          const cand = { vm, from, to, gain: e.gain, cost: c, after: e.after, cools: cools(from, vm, s) };
          if (!best || better(cand, best)) best = cand;
        }
      }
    }
    if (!best) break;
    relieved.add(best.from);
    apply(best, 'relieve', ctx);
  }
  for (const h of pool) {
    if (!h.hot || relieved.has(h)) continue;
    const why = h.vms.length === 0 ? 'no VM' : summarizeRefusals(h);
    notes.push(
      `host ${h.name}: ${h.hot} hot for ${minutes(h.hotSeconds)} but no move ` +
        `(${roomLeft(ctx) <= 0 ? 'migration cap reached' : !perHostRoom(h, ctx) ? 'a migration in flight' : why})`,
    );
  }
}

/** Whether moving `vm` off `from` brings the resource it is hot by under its threshold. */
function cools(from: HostView, vm: VmView, s: BalancerSettings): boolean {
  const d = delta(vm, from);
  if (from.hot === 'memory') {
    return ((from.memoryUsedMiB - d.usedMiB) / from.memoryUsableMiB) * 100 < s.highMemoryPercent;
  }
  return from.cpuAvg - d.cpuPercent < s.highCpuPercent;
}

/** A move that cools its source down beats one that does not; then the larger net gain. */
function better(a: Candidate, b: Candidate): boolean {
  if (a.cools !== b.cools) return Boolean(a.cools);
  return a.gain - a.cost > b.gain - b.cost;
}

function summarizeRefusals(h: HostView): string {
  const refused = h.vms.filter((v) => v.refusal);
  if (refused.length === h.vms.length) {
    const counts = new Map<string, number>();
    for (const v of refused) {
      const key = v.refusal!.replace(/^moved .*/, 'in cool-down').replace(/^\d+ failed.*/, 'backing off');
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    return `every VM held back: ${[...counts].map(([k, n]) => `${n} ${k}`).join(', ')}`;
  }
  return 'no destination with room and no move worth its cost';
}

function apply(c: Candidate, kind: Recommendation['kind'], ctx: Ctx) {
  const { s, stats } = ctx;
  const before = cv(stats);
  const fromCpu = c.from.cpuAvg;
  const toCpu = c.to.cpuAvg;
  const fromMem = (c.from.memoryUsedMiB / c.from.memoryUsableMiB) * 100;
  stats.sum -= c.from.load + c.to.load;
  stats.sum2 -= c.from.load ** 2 + c.to.load ** 2;
  shift(c.from, c.vm, -1, s);
  shift(c.to, c.vm, 1, s);
  stats.sum += c.from.load + c.to.load;
  stats.sum2 += c.from.load ** 2 + c.to.load ** 2;
  c.from.vms = c.from.vms.filter((v) => v !== c.vm);
  c.to.vms.push({ ...c.vm, refusal: 'moved in this plan' });
  c.from.inFlight++;
  c.to.inFlight++;
  const after = cv(stats);
  const vmName = c.vm.vm.name ? `${c.vm.vm.name} (${c.vm.vm.id})` : String(c.vm.vm.id);
  const why =
    kind === 'relieve'
      ? c.from.hot === 'memory'
        ? `memory ${pct(fromMem)} % for ${minutes(c.from.hotSeconds)}`
        : `CPU ${pct(fromCpu)} % for ${minutes(c.from.hotSeconds)}`
      : `CPU ≤ ${s.lowCpuPercent} % for ${minutes(s.windowSeconds)}, being emptied`;
  const reason =
    `move vm ${vmName} from host ${c.from.name} (${why}) to host ${c.to.name} ` +
    `(CPU ${pct(toCpu)} % → ${pct(c.to.cpuAvg)} %): pool imbalance ${before.toFixed(2)} → ${after.toFixed(2)}` +
    (kind === 'relieve'
      ? `; gain ${c.gain.toFixed(3)} ≥ margin ${s.minGain} + cost ${c.cost.toFixed(3)} ` +
        `(${(c.vm.copyMiB / 1024).toFixed(1)} GiB to copy)`
      : `; ${(c.vm.copyMiB / 1024).toFixed(1)} GiB to copy`);
  ctx.recommendations.push({
    vmId: c.vm.vm.id,
    fromHostId: c.from.host.id,
    toHostId: c.to.host.id,
    reason,
    imbalanceBefore: round3(before),
    imbalanceAfter: round3(after),
    gain: round3(c.gain),
    cost: round3(c.cost),
    kind,
  });
}

interface Evacuation {
  host: HostView;
  /** Each VM of the host with the destination it was given (room reserved there). */
  moves: Array<{ vm: VmView; to: HostView }>;
}

/**
 * `pack`: the hosts to empty, lightest (least memory to copy) first, each only if all of its VMs find a place on
 * hosts that are not being emptied and hold VMs (never onto an empty one), the fullest first (best fit), staying
 * ≤ packMaxCpuPercent. Their room is reserved so that hot-host relief and the next host's evacuation do not count on it.
 */
function chooseHostsToEmpty(pool: HostView[], ctx: Ctx, notes: string[]): Evacuation[] {
  const s = ctx.s;
  const chosen: Evacuation[] = [];
  const chosenHosts = new Set<HostView>();
  const receivers = new Set<HostView>();
  const candidates = pool
    .filter((h) => h.cold && h.vms.length > 0 && h.inFlight === 0)
    .map((h) => ({ h, copy: h.vms.reduce((a, v) => a + v.copyMiB, 0) }))
    .sort((a, b) => a.copy - b.copy || a.h.host.id - b.h.host.id);
  for (const { h } of candidates) {
    if (receivers.has(h)) continue;
    const held = h.vms.find((v) => v.refusal);
    if (held) {
      notes.push(`host ${h.name}: could be emptied but vm ${held.vm.id} is held back (${held.refusal})`);
      continue;
    }
    const dests = pool
      .filter((d) => d !== h && d.vms.length > 0 && !chosenHosts.has(d) && !d.hot && d.settled)
      .sort((a, b) => b.load - a.load || a.host.id - b.host.id);
    const moves: Evacuation['moves'] = [];
    const vms = [...h.vms].sort((a, b) => b.vm.memoryMiB - a.vm.memoryMiB || a.vm.id - b.vm.id);
    for (const vm of vms) {
      const to = dests.find((d) => !refusal(vm, d, s.packMaxCpuPercent, ctx, true));
      if (!to) break;
      reserve(to, vm, 1);
      moves.push({ vm, to });
    }
    if (moves.length < vms.length) {
      for (const m of moves) reserve(m.to, m.vm, -1);
      notes.push(`host ${h.name}: could be emptied but its VMs do not all fit elsewhere`);
      continue;
    }
    chosen.push({ host: h, moves });
    chosenHosts.add(h);
    for (const m of moves) receivers.add(m.to);
  }
  return chosen;
}

function reserve(h: HostView, vm: VmView, sign: 1 | -1) {
  const d = delta(vm, h);
  h.reserved.vcpus += sign * d.vcpus;
  h.reserved.memoryMiB += sign * d.memoryMiB;
  h.reserved.usedMiB += sign * d.usedMiB;
  h.reserved.cpuPercent += sign * d.cpuPercent;
}

/** Turns the reserved evacuation moves into recommendations, within the caps left after hot-host relief. */
function emitEvacuations(evacuations: Evacuation[], ctx: Ctx, notes: string[]) {
  for (const e of evacuations) {
    let moved = 0;
    for (const m of e.moves) {
      if (roomLeft(ctx) <= 0 || !perHostRoom(e.host, ctx) || !perHostRoom(m.to, ctx)) continue;
      reserve(m.to, m.vm, -1);
      // Moved already by hot-host relief in this plan (the room it holds now is its own).
      if (!e.host.vms.includes(m.vm)) continue;
      if (refusal(m.vm, m.to, ctx.s.packMaxCpuPercent, ctx, true)) {
        reserve(m.to, m.vm, 1);
        continue;
      }
      const e1 = evaluate(m.vm, e.host, m.to, ctx);
      apply(
        { vm: m.vm, from: e.host, to: m.to, gain: e1.gain, cost: cost(m.vm, ctx.s), after: e1.after },
        'empty',
        ctx,
      );
      moved++;
    }
    const left = e.host.vms.length;
    if (left > 0) {
      notes.push(
        `host ${e.host.name}: being emptied, ${moved} VM(s) move now, ${left} in later cycles (migration caps)`,
      );
    }
  }
}

const round3 = (n: number) => Math.round(n * 1000) / 1000;
const pct = (n: number) => Math.round(n);

function minutes(seconds: number): string {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${Math.round((seconds / 3600) * 10) / 10} h`;
}
