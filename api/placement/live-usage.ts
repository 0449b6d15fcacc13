import type { HostLiveSummary } from '../../ingest/live-view.js';
import type { CandidateHost, LiveUsage } from './placement.js';

/** The part of the ingest live view placement reads (ingest/live-view.ts `LiveView`). */
export interface LiveSummarySource {
  hostSummary(hostname: string): HostLiveSummary | undefined;
}

/** Live figures older than this many collectd intervals are not trusted (the host counts as unreachable then). */
export const LIVE_MAX_AGE_INTERVALS = 3;

/** Reads a host's live usage from the live view by hostname, ignoring figures too old to trust. */
export function liveUsageFrom(
  source: LiveSummarySource | undefined,
  now: () => number = Date.now,
): ((host: CandidateHost) => LiveUsage | undefined) | undefined {
  if (!source) return undefined;
  return (host) => {
    const s = source.hostSummary(host.hostname);
    if (!s) return undefined;
    const ageSeconds = Math.max(0, (now() - s.lastSeen) / 1000);
    if (ageSeconds > LIVE_MAX_AGE_INTERVALS * Math.max(s.interval, 1)) return undefined;
    const live: LiveUsage = { ageSeconds: Math.round(ageSeconds * 10) / 10 };
    if (s.memoryFreeMiB !== undefined) live.memoryFreeMiB = s.memoryFreeMiB;
    if (s.load1 !== undefined) live.load1 = s.load1;
    if (s.cpuBusyPercent !== undefined) live.cpuBusyPercent = s.cpuBusyPercent;
    if (s.cpuCount !== undefined) live.cpuCount = s.cpuCount;
    return live;
  };
}
