import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type BalancerHost,
  type BalancerSettings,
  type BalancerVm,
  DEFAULT_BALANCER_SETTINGS,
  type HostSample,
  planBalance,
} from '../api/balancer/plan.js';
import { fits, hostInventory } from '../api/placement/inventory.js';

/**
 * `npm run bench:balance`: herd's balancer (api/balancer/plan.ts) against oVirt's `evenly_distributed` rule and
 * Proxmox VE's CRS load balancer, implemented here as baselines, on synthetic skewed pools of 10, 100 and 1,000
 * hosts (20 VMs a host: 20,000 VMs for the largest). Writes bench/results/balance.json.
 *
 * Every algorithm sees the same pool and the same load: each VM has a base CPU demand, times a deterministic noise
 * (±10 %, a hash of the VM and the minute), so that a VM's load follows it when it moves. Each cycle is a minute:
 * the hosts report a sample (CPU busy = the demand of their VMs / their CPUs + 2 % for the host itself, at most
 * 100 %; memory used = their VMs' + 4 GiB), the algorithm decides, its migrations complete before the next
 * minute. 10 minutes of history come first. Pools are skewed: a fifth of the hosts are run at 85–100 % of their
 * CPUs, the rest at 15–50 %; 5 % of the VMs are pinned (no algorithm moves them).
 *
 * Lower bound on migrations: for each host whose expected CPU (its VMs' base demand + 2 %) is over 80 % at the
 * start, the fewest of its unpinned VMs whose base demand covers its excess over 80 % — taken largest first, which
 * is the exact minimum for one host; summed over the hosts it is a relaxation (destinations' room ignored): with
 * the expected demand no algorithm brings every host to ≤ 80 % with fewer. ("Over 80 %" in the results is measured
 * on the 5-minute average of the noisy samples, so a host right at the line may cross it either way by chance.)
 *
 * Environment: BENCH_CYCLES (default 60), BENCH_SIZES (default 10,100,1000), BENCH_TIMING_RUNS (default 7).
 */
const CYCLES = Number(process.env.BENCH_CYCLES ?? 60);
const SIZES = (process.env.BENCH_SIZES ?? '10,100,1000').split(',').map(Number);
const TIMING_RUNS = Number(process.env.BENCH_TIMING_RUNS ?? 7);
const VMS_PER_HOST = 20;
const HISTORY = 10;
const MIN = 60_000;
const T0 = Date.UTC(2030, 0, 1);
const HOT = 80;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

interface SimHost {
  id: number;
  cpus: number;
  memoryMiB: number;
  samples: HostSample[];
  lastMigrationAt?: number;
}

interface SimVm {
  id: number;
  hostId: number;
  vcpus: number;
  memoryMiB: number;
  usedMiB: number;
  base: number;
  pinned: boolean;
  lastMovedAt?: number;
  visited: number[];
}

interface Pool {
  hosts: SimHost[];
  vms: SimVm[];
}

function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A VM's demand in a given minute: its base ±10 %, the same for every algorithm. */
function demand(vm: SimVm, minute: number): number {
  let h = Math.imul(vm.id ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(minute + 1, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 13), 0x27d4eb2f);
  const u = ((h ^ (h >>> 16)) >>> 0) / 4294967296;
  return Math.min(vm.vcpus, vm.base * (0.9 + 0.2 * u));
}

const inventoryRecord = (h: SimHost, vms: SimVm[]) => ({
  cpus: h.cpus,
  memoryMiB: h.memoryMiB,
  reservedVcpus: 0,
  reservedMemoryMiB: 0,
  cpuAllocationRatio: 4,
  ramAllocationRatio: 1,
  poolCpuAllocationRatio: null,
  poolRamAllocationRatio: null,
  allocatedVcpus: vms.reduce((a, v) => a + v.vcpus, 0),
  allocatedMemoryMiB: vms.reduce((a, v) => a + v.memoryMiB, 0),
});

function makePool(hostCount: number, seed: number): Pool {
  const r = rng(seed);
  const hosts: SimHost[] = [];
  const vms: SimVm[] = [];
  for (let i = 1; i <= hostCount; i++) {
    const big = i % 2 === 0;
    const host: SimHost = { id: i, cpus: big ? 48 : 32, memoryMiB: (big ? 384 : 256) * 1024, samples: [] };
    hosts.push(host);
    const hot = r() < 0.2;
    const target = host.cpus * (hot ? 0.85 + 0.15 * r() : 0.15 + 0.35 * r());
    const mine: SimVm[] = [];
    for (let j = 0; j < VMS_PER_HOST; j++) {
      const vcpus = [1, 2, 2, 4, 4, 8][Math.floor(r() * 6)];
      const memoryMiB = vcpus * (r() < 0.5 ? 2 : 4) * 1024;
      mine.push({
        id: vms.length + mine.length + 1,
        hostId: i,
        vcpus,
        memoryMiB,
        usedMiB: Math.round(memoryMiB * (0.5 + 0.4 * r())),
        base: vcpus * (0.2 + 0.8 * r()),
        pinned: r() < 0.05,
        visited: [i],
      });
    }
    const total = mine.reduce((a, v) => a + v.base, 0);
    for (const v of mine) v.base = Math.min(v.vcpus, (v.base / total) * target);
    vms.push(...mine);
  }
  return { hosts, vms };
}

function clone(p: Pool): Pool {
  return {
    hosts: p.hosts.map((h) => ({ ...h, samples: [...h.samples] })),
    vms: p.vms.map((v) => ({ ...v, visited: [...v.visited] })),
  };
}

function byHost(p: Pool): Map<number, SimVm[]> {
  const m = new Map<number, SimVm[]>(p.hosts.map((h) => [h.id, []]));
  for (const v of p.vms) m.get(v.hostId)!.push(v);
  return m;
}

/** Appends each host's sample for `minute`. */
function sample(p: Pool, minute: number) {
  const groups = byHost(p);
  for (const h of p.hosts) {
    const mine = groups.get(h.id)!;
    const cores = mine.reduce((a, v) => a + demand(v, minute), 0);
    const used = mine.reduce((a, v) => a + v.usedMiB, 0) + 4096;
    h.samples.push({
      at: T0 + minute * MIN,
      cpuPercent: Math.min(100, 2 + (cores / h.cpus) * 100),
      memoryUsedMiB: used,
    });
    if (h.samples.length > HISTORY + 2) h.samples.shift();
  }
}

const cpuNow = (h: SimHost) => h.samples.at(-1)!.cpuPercent;

function cvOf(xs: number[]): number {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  if (mean <= 0) return 0;
  return Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / xs.length) / mean;
}

/** A VM's demand over the last 5 minutes: what herd's live view gives as its window average. */
const windowCores = (v: SimVm, minute: number) => {
  let sum = 0;
  for (let k = 0; k < 5; k++) sum += demand(v, minute - k);
  return sum / 5;
};

function snapshotOf(p: Pool, minute: number, settings: BalancerSettings) {
  const groups = byHost(p);
  const hosts: BalancerHost[] = p.hosts.map((h) => ({
    id: h.id,
    hostname: `h${h.id}`,
    enabled: true,
    state: 'up',
    ...inventoryRecord(h, groups.get(h.id)!),
    samples: h.samples,
    lastMigrationAt: h.lastMigrationAt,
  }));
  const vms: BalancerVm[] = p.vms.map((v) => ({
    id: v.id,
    hostId: v.hostId,
    vcpus: v.vcpus,
    memoryMiB: v.memoryMiB,
    memoryUsedMiB: v.usedMiB,
    cpuCores: windowCores(v, minute),
    pinned: v.pinned,
    lastMovedAt: v.lastMovedAt,
  }));
  return { hosts, vms, settings, now: T0 + minute * MIN };
}

interface Move {
  vmId: number;
  toHostId: number;
}

type Decide = (p: Pool, minute: number, state: Record<string, number>) => Move[];

const herd =
  (settings: BalancerSettings): Decide =>
  (p, minute) =>
    planBalance(snapshotOf(p, minute, settings)).recommendations.map((r) => ({
      vmId: r.vmId,
      toHostId: r.toHostId,
    }));

/** Whether `v` fits `to` by inventory (the same rule for every algorithm). */
function room(to: SimHost, mine: SimVm[], v: SimVm): boolean {
  const inv = hostInventory(inventoryRecord(to, mine));
  return v.vcpus <= to.cpus && fits(inv.vcpus, v.vcpus) && fits(inv.memoryMiB, v.memoryMiB);
}

/**
 * oVirt `evenly_distributed` as configured by default: each minute, a host is over-utilized once its CPU stayed at
 * or above 75 % for 2 minutes; from the most loaded one, one VM moves — VMs taken by CPU use, lowest first (as we
 * read oVirt's VM selection), the first that has a destination: a host under 60 % CPU (the least loaded) with room.
 */
const ovirt: Decide = (p, minute) => {
  const groups = byHost(p);
  const over = p.hosts
    .filter((h) => h.samples.slice(-2).every((x) => x.cpuPercent >= 75))
    .sort((a, b) => cpuNow(b) - cpuNow(a));
  const source = over[0];
  if (!source) return [];
  const under = p.hosts.filter((h) => cpuNow(h) < 60).sort((a, b) => cpuNow(a) - cpuNow(b));
  const vms = groups
    .get(source.id)!
    .filter((v) => !v.pinned)
    .sort((a, b) => demand(a, minute) - demand(b, minute));
  for (const v of vms) {
    const to = under.find((h) => {
      const after = cpuNow(h) + (demand(v, minute) / h.cpus) * 100;
      return after < 60 && room(h, groups.get(h.id)!, v);
    });
    if (to) return [{ vmId: v.id, toHostId: to.id }];
  }
  return [];
};

/**
 * Proxmox VE's CRS dynamic load balancer (HA manager): node load = mean of CPU and memory use; imbalance = CV of
 * the node loads; when it stays above 0.3 for 3 rounds, the single migration that lowers it most is made, only if
 * it lowers it by at least 10 %.
 */
const proxmox: Decide = (p, minute, state) => {
  const groups = byHost(p);
  const loads = p.hosts.map((h) => {
    const x = h.samples.at(-1)!;
    return (x.cpuPercent / 100 + (x.memoryUsedMiB ?? 0) / h.memoryMiB) / 2;
  });
  const n = loads.length;
  const sum = loads.reduce((a, b) => a + b, 0);
  const sum2 = loads.reduce((a, b) => a + b * b, 0);
  const cvNow = cvOf(loads);
  state.rounds = cvNow > 0.3 ? (state.rounds ?? 0) + 1 : 0;
  if (state.rounds < 3) return [];
  const index = new Map(p.hosts.map((h, i) => [h.id, i]));
  let best: { move: Move; cv: number } | undefined;
  for (const v of p.vms) {
    if (v.pinned) continue;
    const si = index.get(v.hostId)!;
    const s = p.hosts[si];
    const d = demand(v, minute);
    const ls = loads[si] - (d / s.cpus + v.usedMiB / s.memoryMiB) / 2;
    for (let ti = 0; ti < n; ti++) {
      if (ti === si) continue;
      const t = p.hosts[ti];
      const lt = loads[ti] + (d / t.cpus + v.usedMiB / t.memoryMiB) / 2;
      const s1 = sum - loads[si] - loads[ti] + ls + lt;
      const s2 = sum2 - loads[si] ** 2 - loads[ti] ** 2 + ls * ls + lt * lt;
      const mean = s1 / n;
      const cv = Math.sqrt(Math.max(0, s2 / n - mean * mean)) / mean;
      if (best && cv >= best.cv) continue;
      if (!room(t, groups.get(t.id)!, v)) continue;
      best = { move: { vmId: v.id, toHostId: t.id }, cv };
    }
  }
  if (!best || best.cv > cvNow * 0.9) return [];
  state.rounds = 0;
  return [best.move];
};

/** The lower bound described in the header, on the pool as it starts, from the VMs' base (expected) demand. */
function lowerBound(p: Pool): number {
  const groups = byHost(p);
  let moves = 0;
  for (const h of p.hosts) {
    const mine = groups.get(h.id)!;
    const cores = mine.reduce((a, v) => a + v.base, 0);
    const excess = cores - ((HOT - 2) / 100) * h.cpus;
    if (excess <= 0) continue;
    const ds = mine
      .filter((v) => !v.pinned)
      .map((v) => v.base)
      .sort((a, b) => b - a);
    let got = 0;
    for (const d of ds) {
      if (got >= excess) break;
      got += d;
      moves++;
    }
  }
  return moves;
}

/** Figures of the pool now; "over 80 %" on the hosts' 5-minute CPU average, as herd's window sees it. */
function measure(p: Pool) {
  const cpus = p.hosts.map(cpuNow);
  const avg = p.hosts.map(
    (h) => h.samples.slice(-5).reduce((a, x) => a + x.cpuPercent, 0) / Math.min(5, h.samples.length),
  );
  return {
    cpuSpread: round(cvOf(cpus)),
    hostsOver80: avg.filter((c) => c > HOT).length,
    maxCpu: round(Math.max(...cpus)),
  };
}

function simulate(start: Pool, decide: Decide, settings: BalancerSettings) {
  const p = clone(start);
  const state: Record<string, number> = {};
  const before = measure(p);
  const imbalanceOf = () =>
    planBalance(snapshotOf(p, HISTORY + cycle, { ...settings, maxConcurrentMigrations: 0 })).imbalance;
  let cycle = 0;
  const imbalanceBefore = imbalanceOf();
  const ms: number[] = [];
  const trajectory: Array<{ migrations: number; cpuSpread: number; hostsOver80: number }> = [];
  let migrations = 0;
  let untilNoneOver80: number | null = before.hostsOver80 === 0 ? 0 : null;
  for (cycle = 0; cycle < CYCLES; cycle++) {
    const minute = HISTORY + cycle;
    const t = performance.now();
    const moves = decide(p, minute, state);
    ms.push(performance.now() - t);
    for (const m of moves) {
      const v = p.vms.find((x) => x.id === m.vmId)!;
      for (const h of p.hosts)
        if (h.id === v.hostId || h.id === m.toHostId) h.lastMigrationAt = T0 + minute * MIN;
      v.hostId = m.toHostId;
      v.lastMovedAt = T0 + minute * MIN;
      v.visited.push(m.toHostId);
      migrations++;
    }
    sample(p, minute + 1);
    const now = measure(p);
    trajectory.push({ migrations, cpuSpread: now.cpuSpread, hostsOver80: now.hostsOver80 });
    if (untilNoneOver80 === null && now.hostsOver80 === 0) untilNoneOver80 = migrations;
  }
  const after = measure(p);
  return {
    migrations,
    cpuSpread: { before: before.cpuSpread, after: after.cpuSpread },
    imbalance: { before: imbalanceBefore, after: imbalanceOf() },
    hostsOver80: { before: before.hostsOver80, after: after.hostsOver80 },
    maxCpu: { before: before.maxCpu, after: after.maxCpu },
    migrationsUntilNoHostOver80: untilNoneOver80,
    vmsMovedMoreThanOnce: p.vms.filter((v) => v.visited.length > 2).length,
    vmsBackOnAHostTheyLeft: p.vms.filter((v) => new Set(v.visited).size < v.visited.length).length,
    decisionMs: {
      median: round(quantile(ms, 0.5)),
      p95: round(quantile(ms, 0.95)),
      max: round(Math.max(...ms)),
    },
    trajectory,
  };
}

/** The fewest migrations after which `t` reached `spread` (null if it never did). */
function migrationsToReach(
  t: Array<{ migrations: number; cpuSpread: number }>,
  spread: number,
): number | null {
  return t.find((x) => x.cpuSpread <= spread)?.migrations ?? null;
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const round = (n: number) => Math.round(n * 1000) / 1000;

async function main() {
  const defaults: BalancerSettings = { ...DEFAULT_BALANCER_SETTINGS, mode: 'automatic' };
  const wide: BalancerSettings = { ...defaults, maxConcurrentMigrations: 10 };
  const pools = [];
  for (const size of SIZES) {
    const start = makePool(size, 26 + size);
    for (let m = 0; m <= HISTORY; m++) sample(start, m);
    // Decision time on the starting snapshot (the busiest one), median of several runs.
    const snap = snapshotOf(start, HISTORY, defaults);
    const runs: number[] = [];
    for (let i = 0; i < TIMING_RUNS; i++) {
      const t = performance.now();
      planBalance(snap);
      runs.push(performance.now() - t);
    }
    const algorithms = {
      herd: simulate(start, herd(defaults), defaults),
      herdCap10: simulate(start, herd(wide), defaults),
      ovirt: simulate(start, ovirt, defaults),
      proxmox: simulate(start, proxmox, defaults),
    };
    const compare = (name: 'ovirt' | 'proxmox') => ({
      baselineSpread: algorithms[name].cpuSpread.after,
      baselineMigrations: algorithms[name].migrations,
      herdMigrationsToReachIt: migrationsToReach(
        algorithms.herd.trajectory,
        algorithms[name].cpuSpread.after,
      ),
      herdCap10MigrationsToReachIt: migrationsToReach(
        algorithms.herdCap10.trajectory,
        algorithms[name].cpuSpread.after,
      ),
    });
    const strip = (a: ReturnType<typeof simulate>) => {
      const { trajectory: _, ...rest } = a;
      return rest;
    };
    pools.push({
      hosts: size,
      vms: start.vms.length,
      pinnedVms: start.vms.filter((v) => v.pinned).length,
      lowerBoundMigrations: lowerBound(start),
      herdDecisionMsStartingSnapshot: { median: round(quantile(runs, 0.5)), runs: runs.map(round) },
      algorithms: Object.fromEntries(Object.entries(algorithms).map(([k, v]) => [k, strip(v)])),
      versus: { ovirt: compare('ovirt'), proxmox: compare('proxmox') },
    });
    process.stderr.write(`${size} hosts done\n`);
  }
  const result = {
    benchmark: 'balance: herd balancer vs oVirt evenly_distributed and Proxmox CRS, synthetic skewed pools',
    date: new Date().toISOString(),
    machine: {
      cpus: os.cpus().length,
      model: os.cpus()[0]?.model,
      node: process.version,
      loadAverage: os.loadavg()[0],
    },
    cycles: CYCLES,
    cycleSeconds: 60,
    herdSettings: defaults,
    lowerBound:
      'Σ over hosts whose expected CPU is above 80 % at the start of the fewest of their unpinned VMs ' +
      '(largest base demand first) whose base demand covers the excess over 80 %',
    targets: { decisionMs1000Hosts: 100 },
    pools,
  };
  await mkdir(path.join(root, 'bench/results'), { recursive: true });
  await writeFile(path.join(root, 'bench/results/balance.json'), `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

await main();
