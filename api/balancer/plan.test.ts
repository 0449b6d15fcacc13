import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  applyMoves,
  HISTORY,
  makePool,
  type SimHost,
  sample,
  snapshotOf,
} from '../../lib/testing/balance-pool.js';
import { hostInventory } from '../placement/inventory.js';
import {
  type BalancerHost,
  type BalancerSettings,
  type BalancerVm,
  DEFAULT_BALANCER_SETTINGS,
  type HostSample,
  type PoolSnapshot,
  planBalance,
} from './plan.js';

// A fixed instant: the planner is given `now`, it never reads the clock.
const NOW = Date.UTC(2030, 0, 1);
const MIN = 60_000;

/** One sample a minute for the last `minutes` minutes, CPU from `cpu(minutesAgo)`. */
function samples(cpu: number | ((minutesAgo: number) => number), minutes = 10, memoryUsedMiB = 65_536) {
  const out: HostSample[] = [];
  for (let ago = minutes; ago >= 0; ago--) {
    out.push({ at: NOW - ago * MIN, cpuPercent: typeof cpu === 'number' ? cpu : cpu(ago), memoryUsedMiB });
  }
  return out;
}

function host(
  id: number,
  cpu: number | ((ago: number) => number),
  over: Partial<BalancerHost> = {},
): BalancerHost {
  return {
    id,
    hostname: `h${id}`,
    enabled: true,
    state: 'up',
    cpus: 32,
    memoryMiB: 262_144,
    reservedVcpus: 0,
    reservedMemoryMiB: 0,
    cpuAllocationRatio: 4,
    ramAllocationRatio: 1,
    poolCpuAllocationRatio: null,
    poolRamAllocationRatio: null,
    allocatedVcpus: 0,
    allocatedMemoryMiB: 0,
    samples: samples(cpu),
    ...over,
  };
}

function vm(id: number, hostId: number, cpuCores: number, over: Partial<BalancerVm> = {}): BalancerVm {
  return { id, name: `vm${id}`, hostId, vcpus: 8, memoryMiB: 8192, cpuCores, pinned: false, ...over };
}

/** Hosts' allocations from their VMs, as herd's host_allocations keeps them. */
function snapshot(
  hosts: BalancerHost[],
  vms: BalancerVm[],
  settings: Partial<BalancerSettings> = {},
  now = NOW,
): PoolSnapshot {
  return {
    hosts: hosts.map((h) => ({
      ...h,
      allocatedVcpus:
        h.allocatedVcpus + vms.filter((v) => v.hostId === h.id).reduce((a, v) => a + v.vcpus, 0),
      allocatedMemoryMiB:
        h.allocatedMemoryMiB + vms.filter((v) => v.hostId === h.id).reduce((a, v) => a + v.memoryMiB, 0),
    })),
    vms,
    settings: { ...DEFAULT_BALANCER_SETTINGS, mode: 'recommend', ...settings },
    now,
  };
}

/** A hot host 1 (90 %: VMs of 12, 8, 6, 2 CPUs busy + 0.8 for the host) and a cool host 2 (20 %). */
function hotAndCool() {
  return {
    hosts: [host(1, 90), host(2, 20)],
    vms: [vm(11, 1, 12, { vcpus: 16 }), vm(12, 1, 8), vm(13, 1, 6), vm(14, 1, 2), vm(21, 2, 6)],
  };
}

describe('balance', () => {
  test('moves load off a host hot for the whole window, and says why', () => {
    const { hosts, vms } = hotAndCool();
    const plan = planBalance(snapshot(hosts, vms));
    expect(plan.execute).toBe(false);
    expect(plan.recommendations).toHaveLength(1);
    const [move] = plan.recommendations;
    expect(move).toMatchObject({ fromHostId: 1, toHostId: 2, kind: 'relieve' });
    // The VM that brings the spread down most: 8 CPUs (25 % of the host); 12 would invert the two hosts' loads.
    expect(move.vmId).toBe(12);
    expect(move.reason).toMatch(
      /^move vm vm12 \(12\) from host h1 \(1\) \(CPU 90 % for 10 min\) to host h2 \(2\) \(CPU 20 % → 45 %\): pool imbalance 0\.\d\d → 0\.\d\d; gain /,
    );
    expect(plan.imbalanceAfter).toBeLessThan(plan.imbalance);
    expect(move.imbalanceAfter).toBe(plan.imbalanceAfter);
  });

  test('automatic mode executes, off and recommend only show', () => {
    const { hosts, vms } = hotAndCool();
    expect(planBalance(snapshot(hosts, vms, { mode: 'automatic' })).execute).toBe(true);
    const off = planBalance(snapshot(hosts, vms, { mode: 'off' }));
    expect(off.execute).toBe(false);
  });

  test('a host over the threshold for less than the window waits', () => {
    const hosts = [host(1, (ago) => (ago <= 3 ? 95 : 40)), host(2, 20)];
    const plan = planBalance(snapshot(hosts, hotAndCool().vms));
    expect(plan.recommendations).toEqual([]);
    expect(plan.notes.join('\n')).toMatch(/host h1 \(1\): CPU over 80 % for 3 min of the 5 min window/);
  });

  test('a dip under the threshold within the window restarts the wait', () => {
    const hosts = [host(1, (ago) => (ago === 2 ? 70 : 95)), host(2, 20)];
    expect(planBalance(snapshot(hosts, hotAndCool().vms)).recommendations).toEqual([]);
  });

  test('only samples after the host last migrated count', () => {
    const { vms } = hotAndCool();
    const hosts = [host(1, 90, { lastMigrationAt: NOW - 2.5 * MIN }), host(2, 20)];
    expect(planBalance(snapshot(hosts, vms)).recommendations).toEqual([]);
    const settledLongAgo = [host(1, 90, { lastMigrationAt: NOW - 9.5 * MIN }), host(2, 20)];
    expect(planBalance(snapshot(settledLongAgo, vms)).recommendations).toHaveLength(1);
  });

  test('pinned VMs are never moved', () => {
    const { hosts } = hotAndCool();
    const vms = [vm(11, 1, 12, { pinned: true }), vm(12, 1, 8, { pinned: true }), vm(13, 1, 6), vm(14, 1, 2)];
    const plan = planBalance(snapshot(hosts, vms));
    expect(plan.recommendations.map((r) => r.vmId)).toEqual([13]);
    const allPinned = vms.map((v) => ({ ...v, pinned: true }));
    const none = planBalance(snapshot(hosts, allPinned));
    expect(none.recommendations).toEqual([]);
    expect(none.notes.join('\n')).toMatch(/every VM held back: 4 pinned/);
  });

  test('a VM moved within the cool-down stays, one moved before it may go', () => {
    const { hosts } = hotAndCool();
    const recent = [vm(12, 1, 8, { lastMovedAt: NOW - 20 * MIN }), vm(14, 1, 2, { pinned: true })];
    expect(planBalance(snapshot(hosts, recent)).recommendations).toEqual([]);
    const old = [vm(12, 1, 8, { lastMovedAt: NOW - 61 * MIN }), vm(14, 1, 2, { pinned: true })];
    expect(planBalance(snapshot(hosts, old)).recommendations.map((r) => r.vmId)).toEqual([12]);
  });

  test('a failed migration backs off, doubling', () => {
    const { hosts } = hotAndCool();
    // Two failures in a row: 15 min × 2 = 30 min.
    const failed = (ago: number) => [
      vm(12, 1, 8, { failedMigrations: 2, lastFailedMigrationAt: NOW - ago * MIN }),
      vm(14, 1, 2, { pinned: true }),
    ];
    expect(planBalance(snapshot(hosts, failed(20))).recommendations).toEqual([]);
    expect(planBalance(snapshot(hosts, failed(31))).recommendations.map((r) => r.vmId)).toEqual([12]);
  });

  test('disabled, down and silent hosts are no destinations (nor counted)', () => {
    const { vms } = hotAndCool();
    for (const other of [
      host(2, 20, { enabled: false }),
      host(2, 20, { state: 'unreachable' }),
      host(2, 20, { samples: samples(20).map((x) => ({ ...x, at: x.at - 30 * MIN })) }),
    ]) {
      const plan = planBalance(snapshot([host(1, 90), other], vms));
      expect(plan.recommendations).toEqual([]);
      expect(plan.imbalance).toBe(0);
    }
  });

  test('capacity: no destination without room by inventory or too small for the VM', () => {
    const { vms } = hotAndCool();
    // Host 2 can allocate (32 × 4 =) 128 vCPUs: 124 taken leaves no room for an 8-vCPU VM.
    const full = planBalance(snapshot([host(1, 90), host(2, 20, { allocatedVcpus: 124 })], vms));
    expect(full.recommendations).toEqual([]);
    // Memory with reservations: 262,144 − 200,000 reserved leaves less than the 8 GiB guests... after 6 GiB taken.
    const reserved = planBalance(
      snapshot([host(1, 90), host(2, 20, { reservedMemoryMiB: 200_000, allocatedMemoryMiB: 60_000 })], vms),
    );
    expect(reserved.recommendations).toEqual([]);
    // A 4-CPU host is never given an 8-vCPU VM, whatever its overcommit (the largest-host rule, per host).
    const small = planBalance(snapshot([host(1, 90), host(2, 5, { cpus: 4, cpuAllocationRatio: 64 })], vms));
    expect(small.recommendations).toEqual([]);
  });

  test('no move that would make the destination hot: its CPU peak plus the VM stays under 70 %', () => {
    const { vms } = hotAndCool();
    const peaky = host(2, (ago) => (ago === 4 ? 60 : 20));
    const plan = planBalance(snapshot([host(1, 90), peaky], vms));
    // 60 % peak + 25 % (8 of 32 CPUs) > 70 %: the 8-CPU VM may not go; 6 CPUs (19 %) neither; 2 CPUs (6 %) may.
    expect(plan.recommendations.map((r) => r.vmId)).toEqual([14]);
  });

  test('no destination whose memory would pass 80 % (90 % − the hysteresis)', () => {
    const { vms } = hotAndCool();
    const full = host(2, 20, { samples: samples(20, 10, 205 * 1024) });
    // 205 GiB + 8 GiB of vm 12 = 83 % of 256 GiB.
    expect(planBalance(snapshot([host(1, 90), full], vms)).recommendations).toEqual([]);
    const roomy = host(2, 20, { samples: samples(20, 10, 150 * 1024) });
    expect(planBalance(snapshot([host(1, 90), roomy], vms)).recommendations).toHaveLength(1);
  });

  test('a host hot by memory for the whole window is relieved too', () => {
    const hosts = [host(1, 40, { samples: samples(40, 10, 240 * 1024) }), host(2, 20)];
    const vms = [vm(11, 1, 2, { memoryMiB: 32_768, memoryUsedMiB: 30_000 }), vm(12, 1, 2)];
    const plan = planBalance(snapshot(hosts, vms));
    expect(plan.recommendations.map((r) => r.vmId)).toEqual([11]);
    expect(plan.recommendations[0].reason).toMatch(/from host h1 \(1\) \(memory 94 % for 10 min\)/);
  });

  test('30 % of the CPU usage comes from the forecast where there is one', () => {
    const { vms } = hotAndCool();
    const busySoon = (id: number) => host(id, 20, { forecastCpuPercent: 90 });
    const toward = (hosts: BalancerHost[]) => planBalance(snapshot(hosts, vms)).recommendations[0].toHostId;
    expect(toward([host(1, 90), host(2, 20), busySoon(3)])).toBe(2);
    expect(toward([host(1, 90), busySoon(2), host(3, 20)])).toBe(3);
  });

  test('a move must be worth more than the margin and its cost', () => {
    const idle = [vm(11, 1, 0.05), vm(12, 1, 0.05, { memoryMiB: 65_536 })];
    const plan = planBalance(snapshot([host(1, 90), host(2, 60)], idle));
    expect(plan.recommendations).toEqual([]);
    expect(plan.notes.join('\n')).toMatch(
      /CPU hot for 10 min but no move \(no destination with room and no move/,
    );
    // The same move becomes worth it once copying is free and no margin is asked.
    const free = planBalance(snapshot([host(1, 90), host(2, 60)], idle, { minGain: 0, costPerGiB: 0 }));
    expect(free.recommendations).toHaveLength(1);
  });

  test('caps: concurrent migrations in the pool (running ones count) and per host', () => {
    const hosts: BalancerHost[] = [];
    const vms: BalancerVm[] = [];
    for (let i = 1; i <= 6; i++) {
      hosts.push(host(i, 92), host(100 + i, 15));
      vms.push(vm(i * 10, i, 10), vm(i * 10 + 1, i, 10), vm(i * 10 + 2, i, 9));
    }
    const plan = planBalance(snapshot(hosts, vms));
    expect(plan.recommendations).toHaveLength(2);
    const wide = planBalance(snapshot(hosts, vms, { maxConcurrentMigrations: 20 }));
    // One migration per host at a time: 6 hot hosts, each relieved once.
    expect(wide.recommendations).toHaveLength(6);
    expect(new Set(wide.recommendations.map((r) => r.fromHostId)).size).toBe(6);
    expect(new Set(wide.recommendations.map((r) => r.toHostId)).size).toBe(6);
    const running = vms.map((v) => (v.id === 10 ? { ...v, migratingToHostId: 101 } : v));
    const one = planBalance(snapshot(hosts, running));
    expect(one.migrationsInFlight).toBe(1);
    expect(one.recommendations).toHaveLength(1);
    expect(one.recommendations[0].fromHostId).not.toBe(1);
    expect(one.recommendations[0].toHostId).not.toBe(101);
  });

  test('a CPU limit caps what a VM brings', () => {
    // 12 CPUs busy but limited to 50 % of its 16 vCPUs = 8: counted as 8, so it is the move (as vm 12 above).
    const vms = [vm(11, 1, 12, { vcpus: 16, cpuLimitPercent: 50 }), vm(13, 1, 6), vm(14, 1, 2)];
    const plan = planBalance(snapshot([host(1, 90), host(2, 20)], vms));
    expect(plan.recommendations[0].vmId).toBe(11);
    expect(plan.recommendations[0].reason).toMatch(/CPU 20 % → 45 %/);
  });

  test('adversarial: two hosts whose load alternates every interval get no move at all', () => {
    // Each interval the busy VMs' work swaps host: A at 95 % and B at 10 %, then the other way round.
    const a = { ...host(1, 0), samples: [] as HostSample[] };
    const b = { ...host(2, 0), samples: [] as HostSample[] };
    const vms = [vm(11, 1, 14), vm(12, 1, 14), vm(21, 2, 14), vm(22, 2, 14)];
    let moves = 0;
    for (let t = 0; t < 500; t++) {
      const now = NOW + t * MIN;
      const aBusy = t % 2 === 0;
      a.samples = [...a.samples, { at: now, cpuPercent: aBusy ? 95 : 10 }].slice(-20);
      b.samples = [...b.samples, { at: now, cpuPercent: aBusy ? 10 : 95 }].slice(-20);
      const live = vms.map((v) => ({ ...v, cpuCores: (v.hostId === 1) === aBusy ? 14 : 0.5 }));
      const plan = planBalance(snapshot([a, b], live, { mode: 'automatic' }, now));
      moves += plan.recommendations.length;
    }
    expect(moves).toBe(0);
  });

  test('adversarial: slower alternation never moves a VM back within the cool-down', () => {
    // Load jumps between the hosts every 12 minutes (longer than the window): moves happen, ping-pong does not.
    const hosts = [
      { ...host(1, 0), samples: [] as HostSample[] },
      { ...host(2, 0), samples: [] as HostSample[] },
    ];
    const vms: BalancerVm[] = [11, 12, 13, 21, 22, 23].map((id) => vm(id, id < 20 ? 1 : 2, 0, { vcpus: 16 }));
    const history: Array<{ vmId: number; from: number; to: number; at: number }> = [];
    for (let t = 0; t < 600; t++) {
      const now = NOW + t * MIN;
      // The busy VMs swap every 12 minutes between {11, 12, 13} and {21, 22, 23} (wherever those are by then).
      const busy = Math.floor(t / 12) % 2 === 0 ? [11, 12, 13] : [21, 22, 23];
      const live = vms.map((v) => ({ ...v, cpuCores: busy.includes(v.id) ? 9 : 0.5 }));
      for (const h of hosts) {
        const cores = live.filter((v) => v.hostId === h.id).reduce((x, v) => x + v.cpuCores, 0);
        h.samples = [...h.samples, { at: now, cpuPercent: (cores / 32) * 100 + 2 }].slice(-20);
      }
      const plan = planBalance(snapshot(hosts, live, { mode: 'automatic' }, now));
      for (const r of plan.recommendations) {
        history.push({ vmId: r.vmId, from: r.fromHostId, to: r.toHostId, at: now });
        const v = vms.find((x) => x.id === r.vmId)!;
        v.hostId = r.toHostId;
        v.lastMovedAt = now;
        for (const h of hosts) if (h.id === r.fromHostId || h.id === r.toHostId) h.lastMigrationAt = now;
      }
    }
    for (const [i, m] of history.entries()) {
      const back = history
        .slice(i + 1)
        .find((n) => n.vmId === m.vmId && n.at - m.at < DEFAULT_BALANCER_SETTINGS.coolDownSeconds * 1000);
      expect(back).toBeUndefined();
    }
    // Load that stays somewhere longer than the window is followed, but by one move per hot phase at most.
    expect(history.length).toBeGreaterThan(0);
    expect(history.length).toBeLessThanOrEqual(600 / 12);
  });
});

describe('pack', () => {
  function idlePair() {
    const hosts = [host(1, 12), host(2, 8)];
    const vms = [vm(11, 1, 2), vm(12, 1, 1), vm(21, 2, 1), vm(22, 2, 0.5, { memoryMiB: 4096 })];
    return { hosts, vms };
  }

  test('empties the lighter host onto the other, within the caps, and marks it', () => {
    const { hosts, vms } = idlePair();
    const plan = planBalance(snapshot(hosts, vms, { policy: 'pack', maxMigrationsPerHost: 4 }));
    expect(plan.recommendations.map((r) => [r.vmId, r.fromHostId, r.toHostId, r.kind])).toEqual([
      [21, 2, 1, 'empty'],
      [22, 2, 1, 'empty'],
    ]);
    expect(plan.recommendations[0].reason).toMatch(
      /from host h2 \(2\) \(CPU ≤ 20 % for 5 min, being emptied\)/,
    );
    expect(plan.emptyHosts).toEqual([
      { hostId: 2, reason: 'host h2 (2): empty once its 2 VM(s) have moved, can power off' },
    ]);
  });

  test('with the default caps it empties the host over several cycles, never moving the other way', () => {
    const { hosts, vms } = idlePair();
    let now = NOW;
    const moved: number[][] = [];
    for (let cycle = 0; cycle < 5; cycle++) {
      const hs = hosts.map((h) => ({
        ...h,
        samples: samples(h.id === 1 ? 12 : 8).map((x) => ({ ...x, at: x.at + (now - NOW) })),
      }));
      const plan = planBalance(snapshot(hs, vms, { policy: 'pack' }, now));
      for (const r of plan.recommendations) {
        moved.push([r.vmId, r.fromHostId, r.toHostId]);
        vms.find((v) => v.id === r.vmId)!.hostId = r.toHostId;
      }
      now += MIN;
    }
    expect(moved).toEqual([
      [21, 2, 1],
      [22, 2, 1],
    ]);
    expect(vms.every((v) => v.hostId === 1)).toBe(true);
  });

  test('a host with a pinned VM is not emptied; an empty host is listed', () => {
    const { hosts, vms } = idlePair();
    const pinned = vms.map((v) => (v.id === 21 ? { ...v, pinned: true } : v));
    const plan = planBalance(snapshot(hosts, pinned, { policy: 'pack', maxMigrationsPerHost: 4 }));
    // Host 2 is held by its pinned VM; host 1 is emptied onto it instead.
    expect(plan.recommendations.every((r) => r.fromHostId === 1 && r.toHostId === 2)).toBe(true);
    expect(plan.notes.join('\n')).toMatch(
      /host h2 \(2\): could be emptied but vm 21 is held back \(pinned\)/,
    );
    const spare = planBalance(snapshot([...hosts, host(3, 1)], vms, { policy: 'pack' }));
    expect(spare.emptyHosts.map((e) => e.hostId)).toContain(3);
  });

  test('does not pack onto a host above the pack ceiling', () => {
    const hosts = [host(1, 58), host(2, 10)];
    const vms = [vm(11, 1, 18), vm(21, 2, 3)];
    // 58 % + 3 of 32 CPUs (9 %) > 60 %: host 2 stays.
    const plan = planBalance(snapshot(hosts, vms, { policy: 'pack' }));
    expect(plan.recommendations).toEqual([]);
    expect(plan.notes.join('\n')).toMatch(/do not all fit elsewhere/);
  });
});

describe('simulation', () => {
  const hot = (hosts: SimHost[]) =>
    hosts.filter((h) => h.samples.slice(-5).reduce((a, x) => a + x.cpuPercent, 0) / 5 > 80).length;

  test('a skewed pool of 50 hosts and 1,000 VMs over 90 minutes: caps, cool-downs, hot hosts relieved', () => {
    const settings: BalancerSettings = {
      ...DEFAULT_BALANCER_SETTINGS,
      mode: 'automatic',
      maxConcurrentMigrations: 4,
    };
    const pool = makePool(50, 7);
    for (let m = 0; m <= HISTORY; m++) sample(pool, m);
    const hotAtStart = hot(pool.hosts);
    const moves: Array<{ vmId: number; minute: number }> = [];
    for (let cycle = 0; cycle < 90; cycle++) {
      const minute = HISTORY + cycle;
      const plan = planBalance(snapshotOf(pool, minute, settings));
      expect(plan.recommendations.length).toBeLessThanOrEqual(4);
      expect(plan.imbalanceAfter).toBeLessThanOrEqual(plan.imbalance);
      // One migration per host at a time: no host is both ends of two moves.
      const ends = plan.recommendations.flatMap((r) => [r.fromHostId, r.toHostId]);
      expect(new Set(ends).size).toBe(ends.length);
      for (const r of plan.recommendations) {
        const v = pool.vms.find((x) => x.id === r.vmId)!;
        expect(v.pinned).toBe(false);
        const last = moves.findLast((m) => m.vmId === r.vmId);
        if (last) expect(minute - last.minute).toBeGreaterThanOrEqual(60);
        moves.push({ vmId: r.vmId, minute });
      }
      applyMoves(pool, plan.recommendations, minute);
      sample(pool, minute + 1);
    }
    expect(hotAtStart).toBeGreaterThan(5);
    expect(hot(pool.hosts)).toBeLessThanOrEqual(1);
    expect(pool.vms.filter((v) => new Set(v.visited).size < v.visited.length)).toEqual([]);
  });
});

describe('properties', () => {
  const arbPool = fc.record({
    hosts: fc.array(
      fc.record({
        cpus: fc.constantFrom(4, 8, 16, 32),
        memGiB: fc.constantFrom(32, 64, 256),
        cpu: fc.constantFrom(3, 10, 18, 30, 50, 65, 85, 95),
        enabled: fc.integer({ min: 0, max: 6 }).map((n) => n > 0),
        ratio: fc.constantFrom(1, 2, 4, 16),
        reservedGiB: fc.constantFrom(0, 4),
      }),
      { minLength: 2, maxLength: 8 },
    ),
    vms: fc.array(
      fc.record({
        host: fc.nat(),
        vcpus: fc.integer({ min: 1, max: 8 }),
        memGiB: fc.integer({ min: 1, max: 24 }),
        cores: fc.double({ min: 0, max: 16, noNaN: true }),
        pinned: fc.integer({ min: 0, max: 4 }).map((n) => n === 0),
        movedAgo: fc.option(fc.integer({ min: 0, max: 600 })),
        migrating: fc.boolean(),
      }),
      { maxLength: 40 },
    ),
    cap: fc.integer({ min: 1, max: 6 }),
    perHost: fc.integer({ min: 1, max: 3 }),
    policy: fc.constantFrom('balance' as const, 'pack' as const),
  });

  test('a plan never exceeds capacity or the caps, never moves a pinned VM, never raises the imbalance', () => {
    let withMoves = 0;
    fc.assert(
      fc.property(arbPool, (p) => {
        const hosts = p.hosts.map((h, i) =>
          host(i + 1, h.cpu, {
            cpus: h.cpus,
            memoryMiB: h.memGiB * 1024,
            enabled: h.enabled,
            cpuAllocationRatio: h.ratio,
            reservedMemoryMiB: h.reservedGiB * 1024,
          }),
        );
        const vms = p.vms.map((v, i) =>
          vm(100 + i, 1 + (v.host % hosts.length), v.cores, {
            vcpus: v.vcpus,
            memoryMiB: v.memGiB * 1024,
            pinned: v.pinned,
            lastMovedAt: v.movedAgo === null ? undefined : NOW - v.movedAgo * MIN,
            migratingToHostId: v.migrating && i % 3 === 0 ? 1 + ((v.host + 1) % hosts.length) : null,
          }),
        );
        const snap = snapshot(hosts, vms, {
          policy: p.policy,
          maxConcurrentMigrations: p.cap,
          maxMigrationsPerHost: p.perHost,
        });
        const plan = planBalance(snap);
        if (plan.recommendations.length) withMoves++;
        const inFlight = vms.filter((v) => v.migratingToHostId != null).length;
        expect(plan.recommendations.length).toBeLessThanOrEqual(Math.max(0, p.cap - inFlight));
        const planned = new Map<number, number>();
        const moved = new Set<number>();
        const added = new Map<number, { vcpus: number; mem: number }>();
        for (const r of plan.recommendations) {
          const v = vms.find((x) => x.id === r.vmId)!;
          expect(v.pinned).toBe(false);
          expect(v.migratingToHostId ?? null).toBeNull();
          expect(v.hostId).toBe(r.fromHostId);
          expect(moved.has(v.id)).toBe(false);
          moved.add(v.id);
          const to = snap.hosts.find((h) => h.id === r.toHostId)!;
          expect(to.enabled).toBe(true);
          expect(v.vcpus).toBeLessThanOrEqual(to.cpus);
          const a = added.get(to.id) ?? { vcpus: 0, mem: 0 };
          a.vcpus += v.vcpus;
          a.mem += v.memoryMiB;
          added.set(to.id, a);
          for (const id of [r.fromHostId, r.toHostId]) planned.set(id, (planned.get(id) ?? 0) + 1);
        }
        for (const [id, n] of planned) {
          expect(n).toBeLessThanOrEqual(Math.max(0, p.perHost - countInFlight(vms, id)));
        }
        for (const [id, a] of added) {
          const inv = hostInventory(snap.hosts.find((h) => h.id === id)!);
          expect(inv.vcpus.allocated + a.vcpus).toBeLessThanOrEqual(inv.vcpus.capacity);
          expect(inv.memoryMiB.allocated + a.mem).toBeLessThanOrEqual(inv.memoryMiB.capacity);
        }
        if (p.policy === 'balance') {
          expect(plan.imbalanceAfter).toBeLessThanOrEqual(plan.imbalance);
          for (const r of plan.recommendations)
            expect(r.imbalanceAfter).toBeLessThan(r.imbalanceBefore + 1e-9);
        }
      }),
      { numRuns: 400, seed: 26 },
    );
    // The pools drawn are not all quiet: many plans do move VMs.
    expect(withMoves).toBeGreaterThan(40);
  });
});

function countInFlight(vms: BalancerVm[], hostId: number) {
  return vms.filter(
    (v) => v.migratingToHostId != null && (v.hostId === hostId || v.migratingToHostId === hostId),
  ).length;
}
