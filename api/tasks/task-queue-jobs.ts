import { sql } from 'kysely';
import type { Database } from '../../lib/db.js';
import { createLogger, type Logger } from '../../lib/log.js';
import { TASK_JOB } from './tasks.repository.js';

/** A task queued this long without a job was left by a process that died before adding it. */
export const JOBLESS_AFTER_MS = 30_000;

/**
 * Adds the graphile-worker jobs of tasks committed without one. The VM start decision (herd_vm_claim) commits its
 * task alone: add_job NOTIFYs the workers, and PostgreSQL serializes the commits of notifying transactions, WAL
 * flush included, which capped durable start decisions at one per disk flush. Here the jobs of the tasks committed
 * meanwhile are added together, in one transaction (one NOTIFY lock) per batch, right after their commits: a task
 * is durable before its job exists, and a worker starts it as soon as the batch commits.
 *
 * A task whose process died between the two gets its job from `queueJoblessTasks`, which a queue runs when it adds
 * jobs, at most every JOBLESS_AFTER_MS. (A job added twice is harmless: the task starts once.)
 */
export class TaskJobQueue {
  private pending: number[] = [];
  private draining: Promise<void> | undefined;
  private sweptAt = 0;

  constructor(
    private readonly db: Database,
    private readonly log: Logger,
  ) {}

  /** Queues the job of a committed task; added with the others committed in the same turn of the event loop. */
  add(taskId: number): void {
    this.pending.push(taskId);
    this.draining ??= this.drain();
    if (Date.now() - this.sweptAt > JOBLESS_AFTER_MS) {
      this.sweptAt = Date.now();
      void this.sweep();
    }
  }

  /** Resolves once every job queued so far was added (or its failure logged). */
  async flushed(): Promise<void> {
    while (this.draining) await this.draining;
  }

  private async drain(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    while (this.pending.length) {
      const taskIds = this.pending.splice(0);
      await queueJobs(this.db, taskIds).catch((err) =>
        this.log.error(
          { err, taskIds },
          'adding task jobs failed: the sweep for jobless tasks adds them later',
        ),
      );
    }
    this.draining = undefined;
  }

  private async sweep(): Promise<void> {
    try {
      const taskIds = await queueJoblessTasks(this.db, JOBLESS_AFTER_MS);
      if (taskIds.length) this.log.warn({ taskIds }, 'queued tasks had no job (their process died): added');
    } catch (err) {
      this.log.warn({ err }, 'sweep for jobless tasks failed');
    }
  }
}

const queues = new WeakMap<Database, TaskJobQueue>();

/** The job queue of a database handle, made on first use. */
export function taskJobQueue(db: Database, log?: Logger): TaskJobQueue {
  let queue = queues.get(db);
  if (!queue) {
    queue = new TaskJobQueue(db, log ?? createLogger('warn'));
    queues.set(db, queue);
  }
  return queue;
}

/**
 * The jobs of some tasks, as taskJob() (tasks.repository.ts) makes one: one attempt, keyed by the task. Through
 * add_jobs, graphile-worker's bulk form of add_job (documented as experimental): a quarter of the database's work
 * per job of add_job called for each task.
 */
async function queueJobs(db: Database, taskIds: number[]): Promise<void> {
  await sql`
    SELECT count(*) FROM graphile_worker.add_jobs(ARRAY(
      SELECT (${TASK_JOB}, json_build_object('taskId', t.id), NULL, NULL, 1, 'task:' || t.id, NULL, NULL)::graphile_worker.job_spec
      FROM unnest(${taskIds}::int[]) AS t(id)))`.execute(db);
}

/** Adds the job of every task queued for longer than `olderThanMs` without one; answers their ids. */
export async function queueJoblessTasks(db: Database, olderThanMs: number): Promise<number[]> {
  const { rows } = await sql<{ id: number }>`
    SELECT t.id FROM tasks t
    WHERE t.state = 'queued' AND t.created_at < now() - make_interval(secs => ${olderThanMs / 1000})
      AND NOT EXISTS (SELECT 1 FROM graphile_worker._private_jobs j WHERE j.key = 'task:' || t.id)
    ORDER BY t.id LIMIT 1000`.execute(db);
  const taskIds = rows.map((r) => r.id);
  if (taskIds.length) await queueJobs(db, taskIds);
  return taskIds;
}
