import type { HostState } from '../../schema/index.js';

/** A host is silent after this many collectd intervals without a packet (the rule). */
export const SILENT_AFTER_INTERVALS = 3;
/** collectd's default Interval, for hosts whose interval herd has not learnt (no live view in this process). */
export const DEFAULT_COLLECTD_INTERVAL_S = 10;

/** No collectd traffic for 3 intervals, or none ever. */
export function collectdSilent(
  lastSeenMs: number | null,
  intervalS: number | null,
  now = Date.now(),
): boolean {
  if (lastSeenMs === null) return true;
  const interval = intervalS && intervalS > 0 ? intervalS : DEFAULT_COLLECTD_INTERVAL_S;
  return now - lastSeenMs > SILENT_AFTER_INTERVALS * interval * 1000;
}

/**
 * Host state from its two independent signals:
 * - `up`: libvirt answers the heartbeat (a silent collectd is reported beside it, not as a state);
 * - `down`: libvirt does not answer but collectd traffic still arrives: the machine runs, libvirtd does not;
 * - `unreachable`: neither libvirt nor collectd.
 */
export function hostState(heartbeatOk: boolean, silent: boolean): HostState {
  if (heartbeatOk) return 'up';
  return silent ? 'unreachable' : 'down';
}
