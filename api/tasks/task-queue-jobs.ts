import { sql } from 'kysely';
import { createLogger, type Logger } from '../../lib/log.js';
import { type Database, isDatabaseUnavailable } from '../../schema/db.js';
import { taskJobs } from './tasks.repository.js';

/** A task queued this long without a job was left by a process that died before adding it. */
export const JOBLESS_AFTER_MS = 30_000;

/** Jobs of tasks committed within this long of each other are added together. */
export const JOB_LINGER_MS = 10;

/**
 * Adds the graphile-worker jobs of tasks committed without one, shortly after their commit: the batches of VM
 * claims (vm-claim.repository.ts) commit their tasks alone. graphile-worker's add_jobs costs about as much as a
 * claim, and every claim of the process waits for the batch in flight: here it runs beside the claims instead, for
 * the tasks of JOB_LINGER_MS together (one statement, one NOTIFY).
 *
 * A task durable before its job exists is one whose process may die in between: the worker's sweep gives it a job
 * (`queueJoblessTasks`). A job added twice is harmless: the task starts once.
 */
class TaskJobQueue {
  private pending: number[] = [];
  private draining: Promise<void> | undefined;

  constructor(
    private readonly db: Database,
    private readonly log: Logger,
  ) {}

  add(taskIds: number[]): Promise<void> {
    this.pending.push(...taskIds);
    this.draining ??= this.drain();
    return this.draining;
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending.length) {
        await new Promise((resolve) => setTimeout(resolve, JOB_LINGER_MS));
        const taskIds = this.pending.splice(0);
        await taskJobs(sql<number[]>`${taskIds}::int[]`)
          .execute(this.db)
          .catch((err) => {
            if (isDatabaseUnavailable(err)) this.retryLater(taskIds, Date.now());
            else
              this.log.error(
                { err, taskIds },
                'adding task jobs failed: the sweep for jobless tasks adds them later',
              );
          });
      }
    } finally {
      this.draining = undefined;
    }
  }

  /**
   * PostgreSQL unreachable (restarting, a failover under way): the jobs are tried again in the background, the
   * callers not held, until the sweep for jobless tasks would add them anyway.
   */
  private retryLater(taskIds: number[], since: number, pauseMs = RETRY_FIRST_MS): void {
    if (Date.now() - since > JOBLESS_AFTER_MS) {
      this.log.warn({ taskIds }, 'adding task jobs failed: the sweep for jobless tasks adds them later');
      return;
    }
    setTimeout(() => {
      taskJobs(sql<number[]>`${taskIds}::int[]`)
        .execute(this.db)
        .then(
          () => this.log.info({ taskIds }, 'task jobs added once the database was back'),
          () => this.retryLater(taskIds, since, Math.min(pauseMs * 2, RETRY_MAX_MS)),
        );
    }, pauseMs).unref();
  }
}

/** Pauses between tries while the database is unreachable: doubling from the first to the last. */
const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 5_000;

const queues = new WeakMap<Database, TaskJobQueue>();

/** Queues the jobs of committed tasks; resolves once added (or their failure logged: it never rejects). */
export function queueTaskJobs(db: Database, taskIds: number[], log?: Logger): Promise<void> {
  let queue = queues.get(db);
  if (!queue) {
    queue = new TaskJobQueue(db, log ?? createLogger('warn'));
    queues.set(db, queue);
  }
  return queue.add(taskIds);
}

/** Adds the job of every task queued for longer than `olderThanMs` without one; answers their ids. */
export async function queueJoblessTasks(db: Database, olderThanMs: number): Promise<number[]> {
  const { rows } = await sql<{ id: number }>`
    SELECT t.id FROM tasks t
    WHERE t.state = 'queued' AND t.created_at < now() - make_interval(secs => ${olderThanMs / 1000})
      AND NOT EXISTS (SELECT 1 FROM graphile_worker._private_jobs j WHERE j.key = 'task:' || t.id)
    ORDER BY t.id LIMIT 1000`.execute(db);
  const taskIds = rows.map((r) => r.id);
  if (taskIds.length) await taskJobs(sql<number[]>`${taskIds}::int[]`).execute(db);
  return taskIds;
}
