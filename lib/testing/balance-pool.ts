import type { BalancerHost, BalancerSettings, BalancerVm, HostSample } from '../../api/balancer/plan.js';

/**
 * Synthetic hardware pools for the balancer's simulation test and `npm run bench:balance`: hosts and VMs with a
 * skewed CPU load, samples a minute apart, and the balancer's snapshot of them. Deterministic (seeded), so every
 * algorithm sees the same pool and the same load: a VM's demand is its base ±10 % (a hash of the VM and the
 * minute) and follows it when it moves.
 */

export const MIN = 60_000;
/** Minute 0 of every simulation (a fixed instant: nothing depends on the date). */
export const T0 = Date.UTC(2030, 0, 1);
/** Minutes of samples taken before the first decision. */
export const HISTORY = 10;

export interface SimHost {
  id: number;
  cpus: number;
  memoryMiB: number;
  samples: HostSample[];
  lastMigrationAt?: number;
}

export interface SimVm {
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

export interface Pool {
  hosts: SimHost[];
  vms: SimVm[];
}

export function rng(seed: number) {
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
export function demand(vm: SimVm, minute: number): number {
  let h = Math.imul(vm.id ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(minute + 1, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 13), 0x27d4eb2f);
  const u = ((h ^ (h >>> 16)) >>> 0) / 4294967296;
  return Math.min(vm.vcpus, vm.base * (0.9 + 0.2 * u));
}

export const inventoryRecord = (h: SimHost, vms: SimVm[]) => ({
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

export function makePool(hostCount: number, seed: number, vmsPerHost = 20): Pool {
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
    for (let j = 0; j < vmsPerHost; j++) {
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

export function clone(p: Pool): Pool {
  return {
    hosts: p.hosts.map((h) => ({ ...h, samples: [...h.samples] })),
    vms: p.vms.map((v) => ({ ...v, visited: [...v.visited] })),
  };
}

export function byHost(p: Pool): Map<number, SimVm[]> {
  const m = new Map<number, SimVm[]>(p.hosts.map((h) => [h.id, []]));
  for (const v of p.vms) m.get(v.hostId)!.push(v);
  return m;
}

/** Appends each host's sample for `minute`. */
export function sample(p: Pool, minute: number) {
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

export const cpuNow = (h: SimHost) => h.samples.at(-1)!.cpuPercent;

export function cvOf(xs: number[]): number {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  if (mean <= 0) return 0;
  return Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / xs.length) / mean;
}

/** A VM's demand over the last 5 minutes: what herd's live view gives as its window average. */
export const windowCores = (v: SimVm, minute: number) => {
  let sum = 0;
  for (let k = 0; k < 5; k++) sum += demand(v, minute - k);
  return sum / 5;
};

export function snapshotOf(p: Pool, minute: number, settings: BalancerSettings) {
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

/** Carries out moves at `minute`: the VMs change host, their hosts' last migration and the VMs' last move are set. */
export function applyMoves(
  p: Pool,
  moves: ReadonlyArray<{ vmId: number; toHostId: number }>,
  minute: number,
) {
  const at = T0 + minute * MIN;
  for (const m of moves) {
    const v = p.vms.find((x) => x.id === m.vmId)!;
    for (const h of p.hosts) if (h.id === v.hostId || h.id === m.toHostId) h.lastMigrationAt = at;
    v.hostId = m.toHostId;
    v.lastMovedAt = at;
    v.visited.push(m.toHostId);
  }
}
