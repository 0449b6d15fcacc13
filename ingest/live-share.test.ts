import { afterAll, beforeAll, expect, test } from 'vitest';
import { LIVE_MAX_AGE_INTERVALS, liveUsageFrom } from '../api/placement/live-usage.js';
import type { CandidateHost } from '../api/placement/placement.js';
import { createLogger } from '../lib/log.js';
import { createTestDatabase } from '../lib/testing/db.js';
import type { DatabaseHandle } from '../schema/db.js';
import { LivePublisher, SharedLiveView } from './live-share.js';
import { pruneLiveSummaries, upsertLiveSummaries } from './live-share.repository.js';
import { LiveView } from './live-view.js';

const log = createLogger('silent');
let database: DatabaseHandle;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());

const MiB = 1024 * 1024;

/** One collectd interval of a host: its load and free memory, arriving at `arrival` (ms). */
function report(
  view: LiveView,
  host: string,
  load1: number,
  freeMiB: number,
  arrival: number,
  interval = 10,
) {
  const base = { host, pluginInstance: '', time: arrival / 1000, interval };
  view.update(
    {
      ...base,
      plugin: 'load',
      type: 'load',
      typeInstance: '',
      dsTypes: ['gauge', 'gauge', 'gauge'],
      values: [load1, load1, load1],
    },
    ['shortterm', 'midterm', 'longterm'],
    arrival,
  );
  view.update(
    {
      ...base,
      plugin: 'memory',
      type: 'memory',
      typeInstance: 'free',
      dsTypes: ['gauge'],
      values: [freeMiB * MiB],
    },
    ['value'],
    arrival,
  );
}

const rows = (hostnames: string[]) =>
  database.db
    .selectFrom('live_host_summaries')
    .selectAll()
    .where('hostname', 'in', hostnames)
    .orderBy('hostname')
    .execute();

const candidate = (hostname: string): CandidateHost => ({ hostname }) as CandidateHost;

test('a publish writes the hosts whose figures changed since the last one, in one upsert; guests are left out', async () => {
  const now = Date.now();
  const view = new LiveView(() => now);
  report(view, 'pub-a', 4, 1000, now - 1000);
  report(view, 'pub-b', 0.5, 8000, now - 1000);
  report(view, '0b7f2b6c-3c1e-4f6a-9a55-2f3e0c7d9e11', 1, 100, now - 1000);
  const publisher = new LivePublisher({
    db: database.db,
    liveView: view,
    log,
    periodMs: 1000,
    publisher: 'p1',
  });

  expect(await publisher.publish()).toBe(2);
  const first = await rows(['pub-a', 'pub-b']);
  expect(first).toMatchObject([
    { hostname: 'pub-a', load1: 4, memory_free_mib: 1000, interval_seconds: 10, publisher: 'p1' },
    { hostname: 'pub-b', load1: 0.5, memory_free_mib: 8000, publisher: 'p1' },
  ]);
  expect(first[0].last_seen.getTime()).toBe(now - 1000);
  expect(
    await database.db
      .selectFrom('live_host_summaries')
      .where('hostname', 'like', '0b7f%')
      .selectAll()
      .execute(),
  ).toEqual([]);

  // Nothing new: nothing written, the rows keep their publish time.
  expect(await publisher.publish()).toBe(0);
  expect((await rows(['pub-a', 'pub-b'])).map((r) => r.published_at.getTime())).toEqual(
    first.map((r) => r.published_at.getTime()),
  );

  // One host reports again: only its row is written.
  report(view, 'pub-a', 6, 900, now);
  expect(await publisher.publish()).toBe(1);
  const second = await rows(['pub-a', 'pub-b']);
  expect(second[0]).toMatchObject({ load1: 6, memory_free_mib: 900 });
  expect(second[0].published_at.getTime()).toBeGreaterThan(first[0].published_at.getTime());
  expect(second[1].published_at.getTime()).toBe(first[1].published_at.getTime());
});

test('an older arrival never replaces a newer one in the table, whoever publishes it', async () => {
  const now = Date.now();
  await upsertLiveSummaries(database.db, 'p1', [
    { hostname: 'race-a', summary: { lastSeen: now, interval: 10, load1: 9 } },
  ]);
  const written = await upsertLiveSummaries(database.db, 'p2', [
    { hostname: 'race-a', summary: { lastSeen: now - 5000, interval: 10, load1: 1 } },
  ]);
  expect(written).toBe(0);
  expect(await rows(['race-a'])).toMatchObject([{ load1: 9, publisher: 'p1' }]);
  await upsertLiveSummaries(database.db, 'p2', [
    { hostname: 'race-a', summary: { lastSeen: now + 1000, interval: 10, load1: 2 } },
  ]);
  expect(await rows(['race-a'])).toMatchObject([{ load1: 2, publisher: 'p2' }]);
});

test('a reader sees what another process published, read after read; the newer of local and shared wins', async () => {
  const now = Date.now();
  const remote = new LiveView(() => now);
  const publisher = new LivePublisher({
    db: database.db,
    liveView: remote,
    log,
    periodMs: 1000,
    publisher: 'ingest-1',
  });
  const local = new LiveView(() => now);
  const shared = new SharedLiveView({ db: database.db, local, log });

  report(remote, 'mix-a', 3, 500, now - 2000);
  await publisher.publish();
  await shared.refresh();
  expect(shared.hostSummary('mix-a')).toMatchObject({ lastSeen: now - 2000, load1: 3, memoryFreeMiB: 500 });
  expect(shared.sharedSummary('mix-a')).toMatchObject({ publisher: 'ingest-1' });
  expect(shared.hostNames()).toContain('mix-a');

  // This process heard the host later than the other one: its own figure wins.
  report(local, 'mix-a', 0.2, 7000, now - 1000);
  expect(shared.hostSummary('mix-a')).toMatchObject({ lastSeen: now - 1000, load1: 0.2 });

  // The other one hears it later again: read incrementally (since the last read), the shared figure wins.
  report(remote, 'mix-a', 5, 300, now);
  await publisher.publish();
  await shared.refresh();
  expect(shared.hostSummary('mix-a')).toMatchObject({ lastSeen: now, load1: 5, memoryFreeMiB: 300 });
  expect(shared.lastSeen('mix-a')).toBe(now);

  // A host only this process hears, and guests, come from the local view.
  report(local, 'mine', 1, 1, now);
  expect(shared.hostSummary('mine')).toMatchObject({ load1: 1 });
  expect(shared.get('mine', 'load', '', 'load')?.values).toEqual([1, 1, 1]);
});

test('shared figures pass the same age check as local ones (LIVE_MAX_AGE_INTERVALS)', async () => {
  const now = Date.now();
  const interval = 10;
  const limit = LIVE_MAX_AGE_INTERVALS * interval * 1000;
  await upsertLiveSummaries(database.db, 'ingest-1', [
    {
      hostname: 'age-fresh',
      summary: { lastSeen: now - limit + 5000, interval, load1: 2, memoryFreeMiB: 64 },
    },
    { hostname: 'age-old', summary: { lastSeen: now - limit - 5000, interval, load1: 2, memoryFreeMiB: 64 } },
  ]);
  const shared = new SharedLiveView({ db: database.db, log });
  await shared.refresh();
  const usage = liveUsageFrom(shared, () => now)!;
  expect(usage(candidate('age-fresh'))).toMatchObject({ load1: 2, memoryFreeMiB: 64 });
  expect(usage(candidate('age-old'))).toBeUndefined();
  // The row is still there; it is the reader that does not trust it.
  expect(shared.hostSummary('age-old')).toMatchObject({ load1: 2 });
});

test('rows nobody published for long are pruned', async () => {
  await upsertLiveSummaries(database.db, 'p1', [
    { hostname: 'prune-old', summary: { lastSeen: Date.now(), interval: 10 } },
    { hostname: 'prune-new', summary: { lastSeen: Date.now(), interval: 10 } },
  ]);
  await database.db
    .updateTable('live_host_summaries')
    .set({ published_at: new Date(Date.now() - 7_200_000) })
    .where('hostname', '=', 'prune-old')
    .execute();
  expect(await pruneLiveSummaries(database.db, 3_600_000)).toBeGreaterThanOrEqual(1);
  expect((await rows(['prune-old', 'prune-new'])).map((r) => r.hostname)).toEqual(['prune-new']);
});

test('1,000 hosts publish in one statement; a period with nothing new writes nothing', async () => {
  const now = Date.now();
  const view = new LiveView(() => now);
  const names = Array.from({ length: 1000 }, (_, i) => `bench-${String(i).padStart(4, '0')}`);
  for (const [i, name] of names.entries()) report(view, name, i % 7, 1000 + i, now - 500);
  const publisher = new LivePublisher({
    db: database.db,
    liveView: view,
    log,
    periodMs: 1000,
    publisher: 'bench',
  });
  const timings: number[] = [];
  for (let round = 0; round < 5; round++) {
    for (const [i, name] of names.entries()) report(view, name, (i + round) % 7, 1000 + i, now + round);
    const started = performance.now();
    expect(await publisher.publish()).toBe(1000);
    timings.push(performance.now() - started);
  }
  expect(await publisher.publish()).toBe(0);
  // The statement alone, as PostgreSQL runs it (the summaries above are worked out in the publishing process).
  const statement: number[] = [];
  for (let round = 5; round < 10; round++) {
    const batch = names.map((hostname, i) => ({
      hostname,
      summary: { lastSeen: now + round, interval: 10, load1: (i + round) % 7, memoryFreeMiB: 1000 + i },
    }));
    const started = performance.now();
    expect(await upsertLiveSummaries(database.db, 'bench', batch)).toBe(1000);
    statement.push(performance.now() - started);
  }
  const reader = new SharedLiveView({ db: database.db, log });
  const started = performance.now();
  await reader.refresh();
  const readMs = performance.now() - started;
  expect(reader.hostSummary('bench-0999')).toMatchObject({ lastSeen: now + 9, memoryFreeMiB: 1999 });
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)].toFixed(1);
  console.log(
    `live share, 1,000 hosts: publish (summaries + upsert) median ${median(timings)} ms, ` +
      `the upsert alone median ${median(statement)} ms; a full read ${readMs.toFixed(1)} ms`,
  );
});
