import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { connect, type DatabaseHandle } from '../db.js';

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
