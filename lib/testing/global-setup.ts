import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startLocalDaemon } from '../../libvirt/local-daemon.js';
import { connect, migrateToLatest } from '../db.js';
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
 * starts two libvirtds for the tests on a real hypervisor (lib/testing/hypervisor.ts) and one serving libvirt's test
 * driver (HERD_LIBVIRT_TEST_SOCKET).
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

  // One libvirtd for every test:/// host of the run (herd opens them as test+unix:///…?socket=): set before the
  // workers start, so test files and the herd processes they spawn share it. Each connection to a host file is
  // its own fake host, so files do not see each other's hosts; test:///default is one host for all.
  const testDaemon = await startLocalDaemon(path.join(dir, 'libvirtd-test'), {
    maxClients: 10_000,
    maxWorkers: 40,
  });
  process.env.HERD_LIBVIRT_TEST_SOCKET = testDaemon.socket;

  return async () => {
    await testDaemon.stop();
    await hypervisor.stop();
    await influx.stop();
    await pg.stop();
    await rm(dir, { recursive: true, force: true });
  };
}
