import path from 'node:path';
import type { Config } from '../../lib/config.js';
import type { Logger } from '../../lib/log.js';
import type { Database } from '../../schema/db.js';
import { InfluxRollups } from './influx-rollups.js';
import { InfluxStore } from './influx-store.js';
import type { MetricsStore, StoreOptions } from './metrics-store.js';
import { PostgresRollups } from './postgres-rollups.js';
import { PostgresStore } from './postgres-store.js';
import type { Rollups } from './rollups.js';

/**
 * The metrics store and the rollups that go with it (same database, same series): InfluxDB when
 * `config.influx` is set, else PostgreSQL on `db`. Call `store.start()`, then `rollups.start()`.
 */
export function createStores(
  config: Config,
  db: Database,
  log: Logger,
  options: StoreOptions = {},
): { store: MetricsStore; rollups: Rollups } {
  const { writer } = config;
  const rollupLog = log.child({ component: 'rollups' });
  if (config.influx) {
    const store = new InfluxStore({
      ...config.influx,
      batchSize: writer.batchSize,
      flushMs: writer.flushMs,
      memoryPoints: writer.memoryPoints,
      spillMaxBytes: writer.spillMaxBytes,
      spoolDir: options.spool === false ? undefined : path.join(config.dataDir, 'spool'),
      log: log.child({ component: 'influx-store' }),
      registry: options.registry,
    });
    return { store, rollups: new InfluxRollups(store, config.influx.db, config.rollups, rollupLog) };
  }
  const store = new PostgresStore({
    db,
    batchSize: writer.batchSize,
    flushMs: writer.flushMs,
    memoryPoints: writer.memoryPoints,
    spillMaxBytes: writer.spillMaxBytes,
    spoolDir: options.spool === false ? undefined : path.join(config.dataDir, 'spool-postgres'),
    // raw points are kept as long as on InfluxDB's default policy; longer graphs read the rollups
    retentionDays: config.rollups.rawRetentionHours / 24,
    log: log.child({ component: 'postgres-store' }),
    registry: options.registry,
  });
  return { store, rollups: new PostgresRollups(db, config.rollups, rollupLog) };
}

/** The metrics store alone, for what draws no long graphs. Call `start()` on the result. */
export function createMetricsStore(
  config: Config,
  db: Database,
  log: Logger,
  options: StoreOptions = {},
): MetricsStore {
  return createStores(config, db, log, options).store;
}
