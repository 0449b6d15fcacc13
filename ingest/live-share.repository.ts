import { sql } from 'kysely';
import type { Database } from '../schema/db.js';
import type { HostLiveSummary } from './live-view.js';

/** A summary as kept in `live_host_summaries`: by whom and when (the database's clock) it was published. */
export interface SharedHostSummary {
  hostname: string;
  summary: HostLiveSummary;
  publisher: string;
  publishedAt: number;
}

/**
 * Upserts the summaries in one statement. A row is replaced only by a newer arrival (`last_seen`), so two ingest
 * processes that both hear a host cannot make its figures go back in time. Answers the rows written.
 */
export async function upsertLiveSummaries(
  db: Database,
  publisher: string,
  summaries: ReadonlyArray<{ hostname: string; summary: HostLiveSummary }>,
): Promise<number> {
  if (summaries.length === 0) return 0;
  const rows = summaries.map(({ hostname, summary: s }) => ({
    hostname,
    last_seen: new Date(s.lastSeen).toISOString(),
    interval_seconds: s.interval,
    load1: s.load1 ?? null,
    load5: s.load5 ?? null,
    load15: s.load15 ?? null,
    memory_free_mib: s.memoryFreeMiB ?? null,
    memory_used_mib: s.memoryUsedMiB ?? null,
    cpu_busy_percent: s.cpuBusyPercent ?? null,
    cpu_count: s.cpuCount ?? null,
  }));
  const result = await sql`
    INSERT INTO live_host_summaries AS l (hostname, last_seen, interval_seconds, load1, load5, load15,
      memory_free_mib, memory_used_mib, cpu_busy_percent, cpu_count, publisher, published_at)
    SELECT r.hostname, r.last_seen, r.interval_seconds, r.load1, r.load5, r.load15,
      r.memory_free_mib, r.memory_used_mib, r.cpu_busy_percent, r.cpu_count, ${publisher}, now()
    FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS r(hostname text, last_seen timestamptz,
      interval_seconds double precision, load1 double precision, load5 double precision, load15 double precision,
      memory_free_mib double precision, memory_used_mib double precision, cpu_busy_percent double precision,
      cpu_count integer)
    ON CONFLICT (hostname) DO UPDATE SET
      last_seen = EXCLUDED.last_seen, interval_seconds = EXCLUDED.interval_seconds,
      load1 = EXCLUDED.load1, load5 = EXCLUDED.load5, load15 = EXCLUDED.load15,
      memory_free_mib = EXCLUDED.memory_free_mib, memory_used_mib = EXCLUDED.memory_used_mib,
      cpu_busy_percent = EXCLUDED.cpu_busy_percent, cpu_count = EXCLUDED.cpu_count,
      publisher = EXCLUDED.publisher, published_at = EXCLUDED.published_at
    WHERE l.last_seen <= EXCLUDED.last_seen`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}

/**
 * The summaries published at or after `since` (ms, the database's clock; all when undefined) by others than
 * `exceptPublisher`, and the database's clock at the read (undefined when no row was found), from which the next
 * read can start. Times come as epoch milliseconds: no date parsing per row.
 */
export async function readLiveSummaries(
  db: Database,
  options: { since?: number; exceptPublisher?: string } = {},
): Promise<{ rows: SharedHostSummary[]; now: number | undefined }> {
  const epochMs = (column: string) => sql<number>`(extract(epoch FROM ${sql.ref(column)}) * 1000)::float8`;
  let query = db
    .selectFrom('live_host_summaries')
    .select([
      'hostname',
      'interval_seconds',
      'load1',
      'load5',
      'load15',
      'memory_free_mib',
      'memory_used_mib',
      'cpu_busy_percent',
      'cpu_count',
      'publisher',
      epochMs('last_seen').as('last_seen_ms'),
      epochMs('published_at').as('published_ms'),
      sql<number>`(extract(epoch FROM now()) * 1000)::float8`.as('now_ms'),
    ]);
  if (options.since !== undefined) query = query.where('published_at', '>=', new Date(options.since));
  if (options.exceptPublisher !== undefined) query = query.where('publisher', '<>', options.exceptPublisher);
  const found = await query.execute();
  const rows = found.map((r) => {
    const s: HostLiveSummary = { lastSeen: r.last_seen_ms, interval: r.interval_seconds };
    if (r.load1 !== null) s.load1 = r.load1;
    if (r.load5 !== null) s.load5 = r.load5;
    if (r.load15 !== null) s.load15 = r.load15;
    if (r.memory_free_mib !== null) s.memoryFreeMiB = r.memory_free_mib;
    if (r.memory_used_mib !== null) s.memoryUsedMiB = r.memory_used_mib;
    if (r.cpu_busy_percent !== null) s.cpuBusyPercent = r.cpu_busy_percent;
    if (r.cpu_count !== null) s.cpuCount = r.cpu_count;
    return { hostname: r.hostname, summary: s, publisher: r.publisher, publishedAt: r.published_ms };
  });
  return { rows, now: found[0]?.now_ms };
}

/** Forgets hosts no process has published for `olderThanMs` (hosts gone, names that came from noise). */
export async function pruneLiveSummaries(db: Database, olderThanMs: number): Promise<number> {
  const result = await db
    .deleteFrom('live_host_summaries')
    .where('published_at', '<', sql<Date>`now() - ${`${Math.round(olderThanMs)} milliseconds`}::interval`)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
