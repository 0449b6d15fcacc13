import { sql } from 'kysely';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { DatabaseHandle } from '../../lib/db.js';
import { createLogger } from '../../lib/log.js';
import { createTestDatabase } from '../../lib/testing/db.js';
import { prepareTaskQueue } from './task-queue.js';
import { JOBLESS_AFTER_MS, queueJoblessTasks, taskJobQueue } from './task-queue-jobs.js';
import { taskJob } from './tasks.repository.js';

let database: DatabaseHandle;
beforeAll(async () => {
  database = await createTestDatabase();
  await prepareTaskQueue(database.pool, createLogger('silent'));
});
afterAll(() => database.close());

async function queuedTask(ageMs = 0): Promise<number> {
  const { id } = await database.db
    .insertInto('tasks')
    .values({
      user_id: null,
      action: 'start',
      target_type: 'vm',
      target_id: 1,
      created_at: new Date(Date.now() - ageMs),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return id;
}

async function jobsOf(
  taskIds: number[],
): Promise<Array<{ key: string; payload: unknown; max_attempts: number }>> {
  const { rows } = await sql<{ key: string; payload: unknown; max_attempts: number }>`
    SELECT key, payload, max_attempts FROM graphile_worker._private_jobs
    WHERE key = any(${taskIds.map((id) => `task:${id}`)}::text[]) ORDER BY key`.execute(database.db);
  return rows;
}

// First: a queue sweeps when it first adds jobs.
test('a task left queued without a job (its process died) gets one from the sweep', async () => {
  const orphan = await queuedTask(JOBLESS_AFTER_MS + 5_000);
  const recent = await queuedTask();
  const withJob = await queuedTask(JOBLESS_AFTER_MS + 5_000);
  await sql`SELECT ${taskJob(sql<number>`${withJob}::int`)}`.execute(database.db);
  expect(await queueJoblessTasks(database.db, JOBLESS_AFTER_MS)).toEqual([orphan]);
  expect((await jobsOf([orphan, recent, withJob])).map((j) => j.key)).toEqual(
    [`task:${orphan}`, `task:${withJob}`].sort(),
  );
});

test('the jobs of tasks committed together are added together, keyed by task, one attempt each', async () => {
  const ids = [await queuedTask(), await queuedTask(), await queuedTask()];
  const queue = taskJobQueue(database.db);
  for (const id of ids) queue.add(id);
  await queue.flushed();
  expect(await jobsOf(ids)).toEqual(
    ids
      .map((id) => ({ key: `task:${id}`, payload: { taskId: id }, max_attempts: 1 }))
      .sort((a, b) => a.key.localeCompare(b.key)),
  );
});
