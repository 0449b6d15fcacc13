import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createLogger } from '../../lib/log.js';
import { type OwnPostgres, startOwnPostgres } from '../../lib/testing/db.js';
import { sharedTempDir } from '../../lib/testing/temp-dir.js';
import { waitFor } from '../../lib/testing/wait.js';
import { ALERT_CHANNEL, AlertFeed } from './alert-feed.js';

/** The feed's LISTEN connection is cut (PostgreSQL restarted, or a failover): it listens again by itself. */

const log = createLogger('silent');
let dir: string;
let pg: OwnPostgres;

beforeAll(async () => {
  dir = await sharedTempDir('herd-alert-feed-');
  pg = await startOwnPostgres(dir, log);
}, 120_000);
afterAll(async () => {
  await pg?.close();
  await rm(dir, { recursive: true, force: true });
});

test('after PostgreSQL restarts, what other processes notify reaches the feed again', async () => {
  const feed = new AlertFeed();
  const seen: unknown[] = [];
  feed.on('enforcement', (e) => seen.push(e));
  const stop = await feed.listen(pg.handle.pool, log);
  const notify = (poolId: number) =>
    pg.handle.pool.query('SELECT pg_notify($1, $2)', [
      ALERT_CHANNEL,
      JSON.stringify({ origin: 'other', kind: 'enforcement', event: { poolId } }),
    ]);
  try {
    await notify(1);
    await waitFor(() => seen.length === 1, 10_000, 50);
    await pg.stop();
    await pg.restart();
    // Each notification until the feed listens again is missed; one of them then arrives.
    let n = 2;
    await waitFor(
      async () => {
        await notify(n++).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 100));
        return seen.length > 1;
      },
      30_000,
      100,
    );
    expect(seen[0]).toEqual({ poolId: 1 });
    expect((seen[1] as { poolId: number }).poolId).toBeGreaterThan(1);
  } finally {
    await stop();
  }
}, 120_000);
