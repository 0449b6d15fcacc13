import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { loadConfig } from '../../lib/config.js';
import { createLogger } from '../../lib/log.js';
import { createRegistry } from '../../lib/metrics.js';
import { capturingLogger } from '../../lib/testing/capture-log.js';
import { type OwnPostgres, startOwnPostgres } from '../../lib/testing/db.js';
import { sharedTempDir } from '../../lib/testing/temp-dir.js';
import { createUserWithToken } from '../../lib/testing/users.js';
import { waitFor } from '../../lib/testing/wait.js';
import type { DatabaseHandle } from '../../schema/db.js';
import { buildApp } from '../app.js';
import { apiRoutes } from '../routes.js';

/**
 * A PostgreSQL of its own, stopped and started again under the API: meanwhile every request is a 503 JSON
 * answer (never a 500, never a crash), and the same process serves again once PostgreSQL is back.
 */

const log = createLogger('silent');
let dir: string;
let pg: OwnPostgres;
let handle: DatabaseHandle;

beforeAll(async () => {
  dir = await sharedTempDir('herd-pg-restart-');
  pg = await startOwnPostgres(dir, log);
  handle = pg.handle;
}, 120_000);
afterAll(async () => {
  await pg?.close();
  await rm(dir, { recursive: true, force: true });
});

test('PostgreSQL down: 503 JSON with Retry-After, health says so; back: the same app serves again', async () => {
  const { log: appLog, lines } = capturingLogger();
  const app = await buildApp(
    { config: loadConfig({ HERD_DATA_DIR: dir }), db: handle.db, log: appLog, registry: createRegistry() },
    apiRoutes,
  );
  await app.ready();
  const { token } = await createUserWithToken(handle.db, { username: 'root', superAdmin: true });
  const get = async (url: string) => {
    const res = await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } });
    return { status: res.statusCode, body: res.json(), retryAfter: res.headers['retry-after'] };
  };
  try {
    expect((await get('/api/v1/pools')).status).toBe(200);
    await pg.stop();
    for (const url of ['/api/v1/pools', '/api/v1/vms', '/api/v1/hosts/1', '/api/v1/me']) {
      const res = await get(url);
      expect(res.status, `${url}: ${JSON.stringify(res.body)}`).toBe(503);
      expect(res.body).toEqual({
        error: 'unavailable',
        message: 'the database is unavailable; try again shortly',
      });
      expect(Number(res.retryAfter)).toBeGreaterThan(0);
    }
    const health = await get('/api/health');
    expect(health.status).toBe(503);
    expect(health.body).toMatchObject({ ok: false, database: false });

    await pg.restart();
    await waitFor(async () => (await get('/api/v1/pools')).status === 200, 15_000, 100);
    expect((await get('/api/health')).body).toMatchObject({ ok: true, database: true });
    expect(lines.map((l) => JSON.parse(l)).filter((e) => e.level >= 50)).toEqual([]);
  } finally {
    await app.close();
  }
}, 120_000);
