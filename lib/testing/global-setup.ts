import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { connect, migrateToLatest } from '../../schema/db.js';
import { startEmbeddedPostgres } from '../embedded-postgres.js';
import { createLogger } from '../log.js';
import { startSharedHypervisor } from './hypervisor.js';
import { createInflux } from './influxd.js';
import { sharedTempDir } from './temp-dir.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Admin URL of the suite's PostgreSQL (database `postgres`). */
    pgAdminUrl: string;
    /** Name of the migrated template database each test file clones. */
    pgTemplate: string;
    /** The suite's shared InfluxDB. */
    influxUrl: string;
  }
}

export const TEMPLATE_DB = 'herd_template';

/**
 * Starts the suite's own PostgreSQL and InfluxDB on loopback, data under a temporary directory, and
 * migrates a template database that every test file clones (see lib/testing/db.ts); builds the guest image and
 * starts two libvirtds for the tests on a real hypervisor (lib/testing/hypervisor.ts).
 */
export default async function setup(project: TestProject) {
  const log = createLogger(process.env.HERD_TEST_LOG_LEVEL ?? 'warn', 'test');
  const dir = await sharedTempDir('herd-test-');
  const pg = await startEmbeddedPostgres(path.join(dir, 'postgres'), log, { fast: true, password: 'test' });
  const admin = connect(pg.url);
  await admin.pool.query(`CREATE DATABASE ${TEMPLATE_DB}`);
  await admin.close();
  const template = connect(pg.url.replace(/\/postgres$/, `/${TEMPLATE_DB}`));
  const { error } = await migrateToLatest(template.db);
  await template.close();
  if (error) throw error;

  const influx = await createInflux(path.join(dir, 'influx'));
  await influx.start();

  project.provide('pgAdminUrl', pg.url);
  project.provide('pgTemplate', TEMPLATE_DB);
  project.provide('influxUrl', influx.url);

  // The real hypervisor: the guest image and two libvirtds, shared by every test file that boots a guest.
  const hypervisor = await startSharedHypervisor(path.join(dir, 'hypervisor'));
  project.provide('hypervisor', hypervisor.shared);

  return async () => {
    await hypervisor.stop();
    await influx.stop();
    await pg.stop();
    await rm(dir, { recursive: true, force: true });
  };
}
