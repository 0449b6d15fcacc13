import { rm } from 'node:fs/promises';
import { sql } from 'kysely';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createLogger } from '../../lib/log.js';
import { type OwnPostgres, startOwnPostgres } from '../../lib/testing/db.js';
import { sharedTempDir } from '../../lib/testing/temp-dir.js';
import { waitFor } from '../../lib/testing/wait.js';
import { prepareTaskQueue } from './task-queue.js';
import { queueTaskJobs } from './task-queue-jobs.js';
import { insertQueuedTask, taskById } from './tasks.repository.js';
import { startWorker } from './worker.js';

/**
 * PostgreSQL goes away while a task runs (a restart, or a failover to a standby) and comes back: the task's
 * outcome is recorded once it is back (not lost, not turned into "the worker died"), and the worker goes on
 * taking tasks.
 */

const log = createLogger('silent');
let dir: string;
let pg: OwnPostgres;

beforeAll(async () => {
  dir = await sharedTempDir('herd-worker-pg-restart-');
  pg = await startOwnPostgres(dir, log);
  await prepareTaskQueue(pg.handle.pool, log);
}, 120_000);
afterAll(async () => {
  await pg?.close();
  await rm(dir, { recursive: true, force: true });
});

test('a task that ends while PostgreSQL is down is recorded done once it is back; the worker runs the next', async () => {
  let started!: () => void;
  const running = new Promise<void>((resolve) => {
    started = resolve;
  });
  let open!: () => void;
  const gate = new Promise<void>((resolve) => {
    open = resolve;
  });
  const ran: number[] = [];
  const worker = await startWorker({
    db: pg.handle.db,
    pgPool: pg.handle.pool,
    log,
    handlers: {
      gate: {
        async run(task) {
          ran.push(task.id);
          started();
          await gate;
          return { ok: task.id };
        },
        recover: async () => undefined,
      },
    },
    heartbeatMs: 200,
    leaseMs: 120_000,
  });
  const task = { userId: null, action: 'wait', targetType: 'gate', targetId: 1, poolId: null, args: {} };
  try {
    const first = await insertQueuedTask(pg.handle.db, task);
    await running;
    await pg.stop();
    open();
    // The worker tries to record the outcome meanwhile, and fails each time.
    await new Promise((r) => setTimeout(r, 1500));
    await pg.restart();
    await waitFor(async () => (await taskById(pg.handle.db, first))?.state === 'done', 30_000, 100);
    expect((await taskById(pg.handle.db, first))?.result).toEqual({ ok: first });

    const second = await insertQueuedTask(pg.handle.db, task);
    await waitFor(async () => (await taskById(pg.handle.db, second))?.state === 'done', 30_000, 100);
    expect(ran).toEqual([first, second]);
  } finally {
    await worker.stop();
  }
}, 120_000);

test('the job of a task committed just before PostgreSQL went away is added once it is back, without the sweep', async () => {
  const { rows } = await sql<{ id: number }>`
    INSERT INTO tasks (user_id, action, target_type, target_id) VALUES (NULL, 'wait', 'gate', 2) RETURNING id`.execute(
    pg.handle.db,
  );
  const id = rows[0]!.id;
  await pg.stop();
  // Resolves at once: the claim that committed the task does not wait for the database.
  await queueTaskJobs(pg.handle.db, [id], log);
  await pg.restart();
  await waitFor(
    async () => {
      const { rows: jobs } =
        await sql`SELECT 1 FROM graphile_worker._private_jobs WHERE key = ${`task:${id}`}`.execute(
          pg.handle.db,
        );
      return jobs.length === 1;
    },
    // Well before the sweep for jobless tasks would add it (JOBLESS_AFTER_MS, and no worker runs here).
    15_000,
    100,
  );
}, 120_000);
