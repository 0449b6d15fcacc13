import { sql } from 'kysely';
import type { Database } from '../../schema/db.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Copies collectd's last-seen time of every host from the live view into `hosts.last_seen_at`, for a host
 * monitor running in another process than ingest (`herd serve --only worker`), which has no live view of its
 * own. Guests (named by UUID) are skipped. Answers the number of hosts updated.
 */
export async function writeHostsLastSeen(
  db: Database,
  liveView: { hostNames(): string[]; lastSeen(host: string): number | undefined },
): Promise<number> {
  const rows = liveView
    .hostNames()
    .filter((name) => !UUID.test(name))
    .map((name) => ({ name, seen: liveView.lastSeen(name) }))
    .filter((r): r is { name: string; seen: number } => r.seen !== undefined);
  if (rows.length === 0) return 0;
  const result = await sql`
    UPDATE hosts SET last_seen_at = greatest(hosts.last_seen_at, seen.at)
    FROM unnest(${rows.map((r) => r.name)}::text[], ${rows.map((r) => new Date(r.seen).toISOString())}::timestamptz[])
      AS seen(hostname, at)
    WHERE hosts.hostname = seen.hostname
      AND (hosts.last_seen_at IS NULL OR hosts.last_seen_at < seen.at)`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}
