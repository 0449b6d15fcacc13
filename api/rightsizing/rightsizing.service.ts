import { type PercentileValue, percentileWindow, type Rollups } from '../../ingest/store/rollups.js';
import type { Database } from '../../schema/db.js';
import { assertPool, visiblePoolIds, vmVisibilityFilter } from '../access/access.service.js';
import type { AuthUser } from '../auth/auth-user.js';
import { GUEST_MEASUREMENT, HOST_MEASUREMENT } from '../metrics/graph-recorder.js';
import { type UsageLine, usage } from '../quota/quota.service.js';
import { activeVms, type SizedHostRow, type SizedVmRow, visibleHosts } from './rightsizing.repository.js';

/**
 * Right-sizing: VMs whose 95th-percentile CPU or memory use over a window is below a threshold of what they
 * hold, with a smaller size and what it frees (against the owner's quota), and hosts that sat idle.
 *
 * The percentiles are over the 5-minute rollup buckets' means (both stores: `Rollups.percentiles`) of the
 * figures herd's graph recorder writes per guest and host (`herd_guest`: cpu_percent, mem_used; `herd_host`:
 * cpu_busy_cores, load5): the p95 of 5-minute averages, so a short spike does not count as use but a busy
 * half hour a day does.
 */
export const RIGHTSIZING_DEFAULTS = {
  days: 7,
  /** A dimension is oversized when its p95 is below this share (%) of what the VM holds. */
  threshold: 50,
  /** Added (%) to the p95 for the suggested size. */
  headroom: 20,
  /** A host is idle when its p95 CPU busy share (%) is below this … */
  hostCpuThreshold: 10,
  /** … and its p95 5-minute load per CPU below this. */
  hostLoadThreshold: 0.1,
};
export const PERCENTILE = 95;
/** Below this share of the window's buckets with figures, a VM or host has too little data to judge. */
export const MIN_COVERAGE = 0.5;
export const MIN_VCPUS = 1;
export const MIN_MEMORY_MIB = 512;
/** Suggested memory is a multiple of this. */
export const MEMORY_STEP_MIB = 256;

export interface RightsizingQuery {
  poolId?: number;
  days?: number;
  threshold?: number;
  headroom?: number;
  hostCpuThreshold?: number;
  hostLoadThreshold?: number;
  limit?: number;
  offset?: number;
}

export interface Size {
  vcpus: number;
  memoryMiB: number;
}

interface QuotaResource {
  used: number;
  after: number;
  limit: number | null;
}

export interface QuotaEffect {
  /** The pool whose per-user quota applies to the owner (the VM's pool or its nearest ancestor with one). */
  limitPoolId: number | null;
  vcpus: QuotaResource;
  memoryMiB: QuotaResource;
}

export interface VmSizing {
  vmId: number;
  name: string;
  state: string;
  poolId: number;
  poolName: string;
  ownerId: number;
  owner: string;
  status: 'oversized' | 'insufficient_data';
  holds: Size;
  /** Share of the window's 5-minute buckets with figures (the lower of CPU and memory). */
  coverage: number;
  p95: { cpuPercent: number; vcpus: number; memoryMiB: number; memoryPercent: number } | null;
  suggested: Size | null;
  frees: Size | null;
  quota: QuotaEffect | null;
}

export interface HostSizing {
  hostId: number;
  hostname: string;
  poolId: number;
  poolName: string;
  status: 'idle' | 'insufficient_data';
  cpus: number;
  memoryMiB: number;
  coverage: number;
  p95: { cpuPercent: number; loadPerCpu: number } | null;
}

export interface RightsizingReport {
  items: VmSizing[];
  total: number;
  hosts: HostSizing[];
  window: { from: number; to: number; days: number; percentile: number };
  thresholds: Required<Omit<RightsizingQuery, 'poolId' | 'limit' | 'offset' | 'days'>>;
}

export interface RightsizingDeps {
  db: Database;
  rollups?: Rollups;
}

type Thresholds = RightsizingReport['thresholds'];

/** The report for the VMs and hosts the caller sees (in `poolId`'s subtree: 404 if it may not see it). */
export async function rightsizing(
  deps: RightsizingDeps,
  user: AuthUser,
  q: RightsizingQuery,
  nowMs = Date.now(),
): Promise<RightsizingReport> {
  const { db, rollups } = deps;
  if (q.poolId !== undefined) await assertPool(db, user, q.poolId, 'view');
  const days = q.days ?? RIGHTSIZING_DEFAULTS.days;
  const t: Thresholds = {
    threshold: q.threshold ?? RIGHTSIZING_DEFAULTS.threshold,
    headroom: q.headroom ?? RIGHTSIZING_DEFAULTS.headroom,
    hostCpuThreshold: q.hostCpuThreshold ?? RIGHTSIZING_DEFAULTS.hostCpuThreshold,
    hostLoadThreshold: q.hostLoadThreshold ?? RIGHTSIZING_DEFAULTS.hostLoadThreshold,
  };
  const to = nowMs / 1000;
  const from = to - days * 86_400;
  // Without rollups (a test app without a store) there are no figures: every VM has too little data.
  const window = rollups
    ? percentileWindow(rollups, { measurement: '-', field: '-', from, to, percentile: PERCENTILE })
    : null;
  const buckets = rollups && window ? (window.toUs - window.fromUs) / 1e6 / rollups.settings.stepSeconds : 0;

  const [vms, hosts] = await Promise.all([
    activeVms(db, await vmVisibilityFilter(db, user), q.poolId),
    visibleHosts(db, await visiblePoolIds(db, user), q.poolId),
  ]);
  const p95 = async (measurement: string, field: string, names: string[]) => {
    if (!names.length || !rollups || !window) return new Map<string, PercentileValue>();
    const values = await rollups.percentiles({
      measurement,
      field,
      tags: { host: names },
      from,
      to,
      percentile: PERCENTILE,
    });
    return new Map(values.map((v) => [v.tags.host ?? '', v]));
  };
  const uuids = vms.map((v) => v.uuid);
  const hostnames = hosts.map((h) => h.hostname);
  const [cpu, memory, busy, load] = await Promise.all([
    p95(GUEST_MEASUREMENT, 'cpu_percent', uuids),
    p95(GUEST_MEASUREMENT, 'mem_used', uuids),
    p95(HOST_MEASUREMENT, 'cpu_busy_cores', hostnames),
    p95(HOST_MEASUREMENT, 'load5', hostnames),
  ]);
  const coverage = (...values: Array<PercentileValue | undefined>) =>
    buckets > 0 ? Math.min(1, ...values.map((v) => (v?.buckets ?? 0) / buckets)) : 0;

  const listed: VmSizing[] = [];
  for (const vm of vms) {
    const sizing = sizeVm(vm, cpu.get(vm.uuid), memory.get(vm.uuid), coverage, t);
    if (sizing) listed.push(sizing);
  }
  listed.sort(
    (a, b) =>
      rank(a) - rank(b) ||
      (b.frees?.vcpus ?? 0) - (a.frees?.vcpus ?? 0) ||
      (b.frees?.memoryMiB ?? 0) - (a.frees?.memoryMiB ?? 0) ||
      a.vmId - b.vmId,
  );
  const offset = q.offset ?? 0;
  const page = listed.slice(offset, offset + (q.limit ?? 100));
  const quotas = new QuotaLookup(db);
  for (const item of page) if (item.frees) item.quota = await quotas.effect(item);

  const idle: HostSizing[] = [];
  for (const host of hosts) {
    const sizing = sizeHost(host, busy.get(host.hostname), load.get(host.hostname), coverage, t);
    if (sizing) idle.push(sizing);
  }
  return {
    items: page,
    total: listed.length,
    hosts: idle,
    window: {
      from: window ? window.fromUs / 1e6 : from,
      to: window ? window.toUs / 1e6 : from,
      days,
      percentile: PERCENTILE,
    },
    thresholds: t,
  };
}

const rank = (s: VmSizing) => (s.status === 'oversized' ? 0 : 1);
/** Rounds away float noise before a ceiling (1.2 × 5 must not become 7). */
const ceil = (x: number) => Math.ceil(Math.round(x * 1e6) / 1e6);
const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;

/** The VM's line, or undefined when it is right-sized (nothing to free). */
function sizeVm(
  vm: SizedVmRow,
  cpu: PercentileValue | undefined,
  memory: PercentileValue | undefined,
  coverage: (...v: Array<PercentileValue | undefined>) => number,
  t: Thresholds,
): VmSizing | undefined {
  const holds = { vcpus: vm.vcpus, memoryMiB: Number(vm.memory_mib) };
  const base = {
    vmId: vm.id,
    name: vm.name,
    state: vm.state,
    poolId: vm.pool_id,
    poolName: vm.pool_name,
    ownerId: vm.owner_id,
    owner: vm.owner,
    holds,
    coverage: round(coverage(cpu, memory), 3),
  };
  if (!cpu || !memory || base.coverage < MIN_COVERAGE) {
    return { ...base, status: 'insufficient_data', p95: null, suggested: null, frees: null, quota: null };
  }
  const usedVcpus = cpu.value / 100;
  const cpuPercent = holds.vcpus > 0 ? (100 * usedVcpus) / holds.vcpus : 0;
  const memoryPercent = holds.memoryMiB > 0 ? (100 * memory.value) / holds.memoryMiB : 0;
  const grow = 1 + t.headroom / 100;
  const suggested = {
    vcpus:
      cpuPercent < t.threshold
        ? Math.min(holds.vcpus, Math.max(MIN_VCPUS, ceil(usedVcpus * grow)))
        : holds.vcpus,
    memoryMiB:
      memoryPercent < t.threshold
        ? Math.min(
            holds.memoryMiB,
            Math.max(MIN_MEMORY_MIB, ceil((memory.value * grow) / MEMORY_STEP_MIB) * MEMORY_STEP_MIB),
          )
        : holds.memoryMiB,
  };
  const frees = { vcpus: holds.vcpus - suggested.vcpus, memoryMiB: holds.memoryMiB - suggested.memoryMiB };
  if (frees.vcpus <= 0 && frees.memoryMiB <= 0) return undefined;
  return {
    ...base,
    status: 'oversized',
    p95: {
      cpuPercent: round(cpuPercent),
      vcpus: round(usedVcpus, 3),
      memoryMiB: round(memory.value, 1),
      memoryPercent: round(memoryPercent),
    },
    suggested,
    frees,
    quota: null,
  };
}

/** The host's line when it is idle or has too little data; undefined when it is in use. */
function sizeHost(
  host: SizedHostRow,
  busy: PercentileValue | undefined,
  load: PercentileValue | undefined,
  coverage: (...v: Array<PercentileValue | undefined>) => number,
  t: Thresholds,
): HostSizing | undefined {
  const base = {
    hostId: host.id,
    hostname: host.hostname,
    poolId: host.pool_id,
    poolName: host.pool_name,
    cpus: host.cpus,
    memoryMiB: Number(host.memory_mib),
    coverage: round(coverage(busy, load), 3),
  };
  if (!busy || !load || base.coverage < MIN_COVERAGE || host.cpus <= 0) {
    return { ...base, status: 'insufficient_data', p95: null };
  }
  const cpuPercent = (100 * busy.value) / host.cpus;
  const loadPerCpu = load.value / host.cpus;
  if (!(cpuPercent < t.hostCpuThreshold && loadPerCpu < t.hostLoadThreshold)) return undefined;
  return {
    ...base,
    status: 'idle',
    p95: { cpuPercent: round(cpuPercent), loadPerCpu: round(loadPerCpu, 3) },
  };
}

/**
 * The owner's per-user quota that applies on the VM's pool (its own or its nearest ancestor's), with the
 * usage under it before and after this one VM is resized. Usage is read once per pool.
 */
class QuotaLookup {
  private readonly usages = new Map<number, ReturnType<typeof usage>>();

  constructor(private readonly db: Database) {}

  private usage(poolId: number) {
    let found = this.usages.get(poolId);
    if (!found) {
      found = usage(this.db, poolId);
      this.usages.set(poolId, found);
    }
    return found;
  }

  async effect(item: VmSizing): Promise<QuotaEffect> {
    const own = await this.ownerLine(item.poolId, item.ownerId);
    const limitPoolId = own?.limitPoolId ?? null;
    const under =
      limitPoolId !== null && limitPoolId !== item.poolId
        ? await this.ownerLine(limitPoolId, item.ownerId)
        : own;
    const resource = (key: 'vcpus' | 'memoryMiB', freed: number): QuotaResource => {
      const used = under?.[key].used ?? 0;
      return { used, after: used - freed, limit: own?.[key].limit ?? null };
    };
    return {
      limitPoolId,
      vcpus: resource('vcpus', item.frees?.vcpus ?? 0),
      memoryMiB: resource('memoryMiB', item.frees?.memoryMiB ?? 0),
    };
  }

  private async ownerLine(poolId: number, ownerId: number): Promise<UsageLine | undefined> {
    return (await this.usage(poolId)).users.find((u) => u.userId === ownerId);
  }
}

const CSV_COLUMNS: Array<[string, (v: VmSizing) => string | number | null | undefined]> = [
  ['vm_id', (v) => v.vmId],
  ['vm', (v) => v.name],
  ['pool', (v) => v.poolName],
  ['owner', (v) => v.owner],
  ['status', (v) => v.status],
  ['vcpus', (v) => v.holds.vcpus],
  ['memory_mib', (v) => v.holds.memoryMiB],
  ['coverage', (v) => v.coverage],
  ['p95_cpu_percent', (v) => v.p95?.cpuPercent],
  ['p95_memory_mib', (v) => v.p95?.memoryMiB],
  ['p95_memory_percent', (v) => v.p95?.memoryPercent],
  ['suggested_vcpus', (v) => v.suggested?.vcpus],
  ['suggested_memory_mib', (v) => v.suggested?.memoryMiB],
  ['frees_vcpus', (v) => v.frees?.vcpus],
  ['frees_memory_mib', (v) => v.frees?.memoryMiB],
  ['quota_pool_id', (v) => v.quota?.limitPoolId],
  ['quota_vcpus_used', (v) => v.quota?.vcpus.used],
  ['quota_vcpus_after', (v) => v.quota?.vcpus.after],
  ['quota_vcpus_limit', (v) => v.quota?.vcpus.limit],
  ['quota_memory_mib_used', (v) => v.quota?.memoryMiB.used],
  ['quota_memory_mib_after', (v) => v.quota?.memoryMiB.after],
  ['quota_memory_mib_limit', (v) => v.quota?.memoryMiB.limit],
];

/** RFC 4180: quoted when it holds a comma, quote or line break, quotes doubled; a leading =+-@ is defused. */
export function csvField(value: string | number | null | undefined): string {
  if (value === null || value === undefined) return '';
  let text = String(value);
  // A spreadsheet would run a cell starting like a formula (names are user input).
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** The report's VM lines as CSV: a header row, then one line per VM, CRLF line ends. */
export function rightsizingCsv(report: RightsizingReport): string {
  const lines = [CSV_COLUMNS.map(([name]) => name).join(',')];
  for (const item of report.items) lines.push(CSV_COLUMNS.map(([, get]) => csvField(get(item))).join(','));
  return `${lines.join('\r\n')}\r\n`;
}
