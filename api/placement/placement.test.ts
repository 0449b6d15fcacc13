import { describe, expect, test } from 'vitest';
import { DEFAULT_CPU_ALLOCATION_RATIO, DEFAULT_RAM_ALLOCATION_RATIO, hostInventory } from './inventory.js';
import { liveUsageFrom } from './live-usage.js';
import { type CandidateHost, type LiveUsage, place } from './placement.js';

function host(id: number, over: Partial<CandidateHost> = {}): CandidateHost {
  return {
    id,
    hostname: `h${id}`,
    enabled: true,
    state: 'up',
    cpus: 8,
    memoryMiB: 16384,
    reservedVcpus: 0,
    reservedMemoryMiB: 0,
    cpuAllocationRatio: 1,
    ramAllocationRatio: 1,
    poolCpuAllocationRatio: null,
    poolRamAllocationRatio: null,
    allocatedVcpus: 0,
    allocatedMemoryMiB: 0,
    ...over,
  };
}

const small = { vcpus: 1, memoryMiB: 1024 };

describe('inventory', () => {
  test('host ratio, then the pool ratio, then the named defaults', () => {
    const own = hostInventory(host(1, { cpuAllocationRatio: 2, poolCpuAllocationRatio: 4 }));
    expect(own.vcpus.capacity).toBe(16);
    const pool = hostInventory(host(1, { cpuAllocationRatio: null, poolCpuAllocationRatio: 4 }));
    expect(pool.vcpus.capacity).toBe(32);
    const defaults = hostInventory(
      host(1, {
        cpuAllocationRatio: null,
        ramAllocationRatio: null,
        reservedVcpus: 2,
        reservedMemoryMiB: 4096,
      }),
    );
    expect(defaults.vcpus).toMatchObject({ ratio: DEFAULT_CPU_ALLOCATION_RATIO, capacity: 6 * 16 });
    expect(defaults.memoryMiB).toMatchObject({ ratio: DEFAULT_RAM_ALLOCATION_RATIO, capacity: 12288 * 1.5 });
  });
});

describe('filters', () => {
  test('every filtered host says why; an exact fit is room', () => {
    const d = place(
      [
        host(1, { enabled: false }),
        host(2, { state: 'unreachable' }),
        host(3, { allocatedVcpus: 8 }),
        host(4, { allocatedMemoryMiB: 16384 - 1023 }),
        host(5, { allocatedMemoryMiB: 16384 - 1024 }),
      ],
      small,
      { policy: 'spread' },
    );
    expect(d.chosenHostId).toBe(5);
    const byId = new Map(d.candidates.map((c) => [c.hostId, c]));
    expect(byId.get(1)!.reasons).toEqual(['disabled']);
    expect(byId.get(2)!.reasons).toEqual(['host is unreachable']);
    expect(byId.get(3)!.reasons[0]).toBe(
      'no room for vCPUs: 8 allocated + 1 requested > 8 capacity ((8 − 0 reserved) × 1)',
    );
    expect(byId.get(4)!.reasons[0]).toMatch(/^no room for memory: 15361 MiB allocated \+ 1024 MiB requested/);
    expect(byId.get(5)).toMatchObject({ eligible: true, rank: 1, reasons: [] });
  });

  test('live free memory filters a host that has inventory room', () => {
    const live = new Map<number, LiveUsage>([[1, { ageSeconds: 1, memoryFreeMiB: 512 }]]);
    const d = place([host(1), host(2)], small, { policy: 'spread', live: (h) => live.get(h.id) });
    expect(d.chosenHostId).toBe(2);
    expect(d.candidates.find((c) => c.hostId === 1)!.reasons).toEqual([
      'live usage: 512 MiB free now < 1024 MiB requested',
    ]);
  });

  test('manual placement gets the checks too, and says why it cannot', () => {
    const ok = place([host(1), host(2)], small, { policy: 'spread', requestedHostId: 1 });
    expect(ok.chosenHostId).toBe(1);
    expect(ok.candidates.find((c) => c.hostId === 2)!.reasons).toEqual(['not the requested host 1']);
    const full = place([host(1, { allocatedVcpus: 8 }), host(2)], small, {
      policy: 'spread',
      requestedHostId: 1,
    });
    expect(full.chosenHostId).toBeNull();
    expect(full.message).toMatch(/^host h1 \(1\) cannot take 1 vCPUs and 1024 MiB: no room for vCPUs/);
    const elsewhere = place([host(1)], small, { policy: 'spread', requestedHostId: 9 });
    expect(elsewhere.message).toBe("host 9 is not in the VM's hardware pool");
  });

  test('no host: the message names hosts and points at the explanation', () => {
    const d = place([host(1, { enabled: false })], small, { policy: 'spread' });
    expect(d.chosenHostId).toBeNull();
    expect(d.message).toContain('h1 (1): disabled');
    expect(place([], small, { policy: 'spread' }).message).toMatch(/^no host in the VM's hardware pool/);
  });
});

describe('ranking', () => {
  const hosts = [
    host(1, { allocatedVcpus: 4, allocatedMemoryMiB: 8192 }),
    host(2),
    host(3, { allocatedVcpus: 2 }),
  ];

  test('spread picks the emptiest host, pack the fullest', () => {
    expect(place(hosts, small, { policy: 'spread' }).candidates.map((c) => c.hostId)).toEqual([2, 3, 1]);
    expect(place(hosts, small, { policy: 'pack' }).candidates.map((c) => c.hostId)).toEqual([1, 3, 2]);
  });

  test('ties go to the lower host id', () => {
    expect(place([host(3), host(1), host(2)], small, { policy: 'spread' }).chosenHostId).toBe(1);
  });

  test('load picks the least loaded host; hosts without live figures come last', () => {
    const live = new Map<number, LiveUsage>([
      [1, { ageSeconds: 1, load1: 6, cpuBusyPercent: 70 }],
      [3, { ageSeconds: 1, load1: 1, cpuBusyPercent: 10 }],
    ]);
    const d = place(hosts, small, { policy: 'load', live: (h) => live.get(h.id) });
    expect(d.candidates.map((c) => c.hostId)).toEqual([3, 1, 2]);
    expect(d.candidates[2].score).toBeLessThan(0);
  });

  test('a pack sequence fills one host before the next; spread alternates', () => {
    const fill = (policy: 'pack' | 'spread') => {
      const state = [host(1, { cpus: 2 }), host(2, { cpus: 2 })];
      const chosen: number[] = [];
      for (let i = 0; i < 4; i++) {
        const id = place(state, small, { policy }).chosenHostId!;
        chosen.push(id);
        const h = state.find((s) => s.id === id)!;
        h.allocatedVcpus += 1;
        h.allocatedMemoryMiB += 1024;
      }
      return chosen;
    };
    expect(fill('pack')).toEqual([1, 1, 2, 2]);
    expect(fill('spread')).toEqual([1, 2, 1, 2]);
  });
});

describe('live usage from the live view', () => {
  test('old figures are not trusted', () => {
    const now = 100_000;
    const summary = { lastSeen: now - 5_000, interval: 10, memoryFreeMiB: 2048, load1: 0.5 };
    const fresh = liveUsageFrom({ hostSummary: () => summary }, () => now)!;
    expect(fresh(host(1))).toEqual({ ageSeconds: 5, memoryFreeMiB: 2048, load1: 0.5 });
    const old = liveUsageFrom({ hostSummary: () => ({ ...summary, lastSeen: now - 31_000 }) }, () => now)!;
    expect(old(host(1))).toBeUndefined();
    expect(liveUsageFrom(undefined)).toBeUndefined();
  });
});
