import { Logger as GraphileLogger, type LogFunctionFactory, runMigrations } from 'graphile-worker';
import type pg from 'pg';
import type { Logger } from '../../lib/log.js';

/**
 * Installs or upgrades graphile-worker's schema (`graphile_worker`), which requesting a task needs. Every role
 * that queues or runs tasks calls it at start; concurrent calls from several processes are safe.
 */
export async function prepareTaskQueue(pgPool: pg.Pool, log: Logger): Promise<void> {
  await runMigrations({ pgPool, logger: graphileLogger(log) });
}

/** graphile-worker's logs through herd's logger. */
export function graphileLogger(log: Logger): GraphileLogger {
  const factory: LogFunctionFactory = (scope) => {
    const child = log.child({ part: 'task-queue', graphile: scope });
    return (level, message, meta) => {
      const fields = meta ?? {};
      if (level === 'error') child.error(fields, message);
      else if (level === 'warning') child.warn(fields, message);
      // Its info level logs every job: debug for herd, which records tasks in its own table.
      else child.debug(fields, message);
    };
  };
  return new GraphileLogger(factory);
}
