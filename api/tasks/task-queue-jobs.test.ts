import { sql } from 'kysely';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createLogger } from '../../lib/log.js';
import { createTestDatabase } from '../../lib/testing/db.js';
import type { DatabaseHandle } from '../../schema/db.js';
import { prepareTaskQueue } from './task-queue.js';
import { JOBLESS_AFTER_MS, queueJoblessTasks, queueTaskJobs } from './task-queue-jobs.js';
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

test('the jobs of tasks committed within the linger are added together, keyed by task, one attempt each', async () => {
  const ids = [await queuedTask(), await queuedTask(), await queuedTask()];
  await Promise.all([queueTaskJobs(database.db, ids.slice(0, 1)), queueTaskJobs(database.db, ids.slice(1))]);
  // One statement: one transaction, one timestamp.
  const { rows } = await sql<{ n: number }>`
    SELECT count(DISTINCT created_at)::int AS n FROM graphile_worker._private_jobs
    WHERE key = any(${ids.map((id) => `task:${id}`)}::text[])`.execute(database.db);
  expect(rows[0].n).toBe(1);
  expect(await jobsOf(ids)).toEqual(
    ids
      .map((id) => ({ key: `task:${id}`, payload: { taskId: id }, max_attempts: 1 }))
      .sort((a, b) => a.key.localeCompare(b.key)),
  );
});
