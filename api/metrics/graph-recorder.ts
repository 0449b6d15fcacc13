import type { LiveView } from '../../ingest/live-view.js';
import type { MetricsStore } from '../../ingest/store/metrics-store.js';
import type { Point } from '../../ingest/types.js';

/** A host's figures per collectd interval, as graphs draw them (fields: HOST_FIELDS). Tag `host`. */
export const HOST_MEASUREMENT = 'herd_host';
/** A guest's figures per interval, from the virt plugin (fields: GUEST_FIELDS). Tag `host`: the guest's UUID. */
export const GUEST_MEASUREMENT = 'herd_guest';

export const HOST_FIELDS = [
  'cpu_busy_cores',
  'cpu_count',
  'load1',
  'load5',
  'load15',
  'mem_used',
  'mem_buffered',
  'mem_cached',
  'mem_free',
  'net_rx',
  'net_tx',
  'disk_read',
  'disk_write',
] as const;
export const GUEST_FIELDS = [
  'cpu_percent',
  'mem',
  'mem_used',
  'disk_read',
  'disk_write',
  'net_rx',
  'net_tx',
] as const;

const MiB = 1024 * 1024;
// Not traffic of the machine: loopback. Not disks of their own: partitions, device-mapper and loop devices,
// RAM disks (their traffic is already counted on the disk below them, or is not I/O at all).
export const LOOPBACK = /^lo$/;
export const NOT_A_DISK =
  /^(?:(?:sd|vd|xvd|hd)[a-z]+\d+|nvme\d+n\d+p\d+|mmcblk\d+p\d+|dm-\d+|loop\d+|ram\d+|zram\d+|sr\d+)$/;

/**
 * Records, for every host and guest the live view hears from, one point per collectd interval with the
 * figures the graphs show (CPU busy, memory, load, network and disk rates): graphs of many hosts or long
 * ranges then read one gauge series per host instead of every CPU's and interface's counters, which is what
 * keeps a pool graph of 100 hosts fast. The figures are those of the live view (rates between the last two
 * samples), stamped with the host's own sample time.
 */
export class GraphRecorder {
  private readonly recorded = new Map<string, number>();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly liveView: LiveView,
    private readonly store: Pick<MetricsStore, 'write'>,
    private readonly everyMs = 5000,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => this.record(), this.everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Writes a point for each host or guest with a newer sample than last time; answers how many. */
  record(): number {
    const points: Point[] = [];
    for (const name of this.liveView.hostNames()) {
      const series = this.liveView.series(name);
      const time = Math.max(...series.map((s) => s.time));
      if (!(time > (this.recorded.get(name) ?? 0))) continue;
      this.recorded.set(name, time);
      const point = series.some((s) => s.plugin === 'virt') ? this.guest(name, time) : this.host(name, time);
      if (point) points.push(point);
    }
    // Hosts that went away are forgotten with the live view's own pruning.
    if (this.recorded.size > this.liveView.size) {
      const live = new Set(this.liveView.hostNames());
      for (const name of this.recorded.keys()) if (!live.has(name)) this.recorded.delete(name);
    }
    if (points.length) this.store.write(points);
    return points.length;
  }

  private host(name: string, time: number): Point | undefined {
    const summary = this.liveView.hostSummary(name);
    if (!summary) return undefined;
    const fields: Record<string, number | undefined> = {
      cpu_count: summary.cpuCount,
      cpu_busy_cores:
        summary.cpuBusyPercent !== undefined && summary.cpuCount
          ? (summary.cpuBusyPercent / 100) * summary.cpuCount
          : undefined,
      load1: summary.load1,
      load5: summary.load5,
      load15: summary.load15,
      mem_used: summary.memoryUsedMiB,
      mem_free: summary.memoryFreeMiB,
    };
    // Sums over interfaces and disks: one without a rate (its first sample, a counter reset) makes the sum
    // unknown (no figure: a gap), never a zero or a dip.
    const add = (key: 'net_rx' | 'net_tx' | 'disk_read' | 'disk_write', rate: number | null | undefined) => {
      if (key in fields && fields[key] === undefined) return;
      fields[key] = rate === null || rate === undefined ? undefined : (fields[key] ?? 0) + rate;
    };
    for (const s of this.liveView.series(name)) {
      if (
        s.plugin === 'memory' &&
        s.type === 'memory' &&
        (s.typeInstance === 'cached' || s.typeInstance === 'buffered')
      ) {
        fields[`mem_${s.typeInstance}`] = s.values[0] / MiB;
      } else if (s.plugin === 'interface' && s.type === 'if_octets' && !LOOPBACK.test(s.pluginInstance)) {
        add('net_rx', s.rates[0]);
        add('net_tx', s.rates[1]);
      } else if (s.plugin === 'disk' && s.type === 'disk_octets' && !NOT_A_DISK.test(s.pluginInstance)) {
        add('disk_read', s.rates[0]);
        add('disk_write', s.rates[1]);
      }
    }
    return point(HOST_MEASUREMENT, name, time, fields);
  }

  private guest(uuid: string, time: number): Point | undefined {
    const s = this.liveView.guestSummary(uuid);
    if (!s) return undefined;
    return point(GUEST_MEASUREMENT, uuid, time, {
      cpu_percent: s.cpuPercent,
      mem: s.memoryMiB,
      mem_used: s.memoryUsedMiB,
      disk_read: s.diskReadBytesPerSec,
      disk_write: s.diskWriteBytesPerSec,
      net_rx: s.netRxBytesPerSec,
      net_tx: s.netTxBytesPerSec,
    });
  }
}

function point(
  measurement: string,
  host: string,
  time: number,
  fields: Record<string, number | undefined>,
): Point | undefined {
  const kept: Record<string, number> = {};
  for (const [key, value] of Object.entries(fields))
    if (value !== undefined && Number.isFinite(value)) kept[key] = value;
  return Object.keys(kept).length ? { measurement, tags: { host }, fields: kept, time } : undefined;
}
