import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { inject } from 'vitest';
import { connect, type DatabaseHandle, migrateToLatest } from '../../schema/db.js';
import { startEmbeddedPostgres } from '../embedded-postgres.js';
import type { Logger } from '../log.js';

/** A fresh, migrated database of its own for one test file (a clone of the suite's template). */
export async function createTestDatabase(): Promise<DatabaseHandle & { name: string }> {
  const adminUrl = inject('pgAdminUrl');
  const name = `herd_${randomBytes(6).toString('hex')}`;
  const admin = connect(adminUrl, { max: 1 });
  try {
    await admin.pool.query(`CREATE DATABASE ${name} TEMPLATE ${inject('pgTemplate')}`);
  } finally {
    await admin.close();
  }
  const handle = connect(adminUrl.replace(/\/postgres$/, `/${name}`));
  return { ...handle, name };
}

/** A fresh InfluxDB database name on the suite's InfluxDB. */
export function testInflux(): { url: string; db: string } {
  return { url: inject('influxUrl'), db: `herd_${randomBytes(6).toString('hex')}` };
}

/** A migrated PostgreSQL of the test's own under `dir`, for tests that stop and start it. */
export interface OwnPostgres {
  handle: DatabaseHandle;
  url: string;
  stop(): Promise<void>;
  /** Starts it again on the same port and data. */
  restart(): Promise<void>;
  /** Closes the handle and stops the server. */
  close(): Promise<void>;
}

export async function startOwnPostgres(dir: string, log: Logger): Promise<OwnPostgres> {
  const dataDir = path.join(dir, 'pg');
  const password = randomBytes(6).toString('hex');
  let pg = await startEmbeddedPostgres(dataDir, log, { fast: true, password });
  const port = Number(new URL(pg.url).port);
  const handle = connect(pg.url, { max: 4 });
  const { error } = await migrateToLatest(handle.db);
  if (error) throw error;
  return {
    handle,
    url: pg.url,
    stop: () => pg.stop(),
    async restart() {
      pg = await startEmbeddedPostgres(dataDir, log, { fast: true, password, port });
    },
    async close() {
      await handle.close();
      await pg.stop();
    },
  };
}
