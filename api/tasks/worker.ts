import { randomBytes } from 'node:crypto';
import { type Runner, run, type Task } from 'graphile-worker';
import type pg from 'pg';
import type { Logger } from '../../lib/log.js';
import { Counter, Gauge, type Registry } from '../../lib/metrics.js';
import { type Database, isDatabaseUnavailable } from '../../schema/db.js';
import { publicMessage } from '../http/errors.js';
import type { TaskContext, TaskHandler, TaskHandlers } from './task-handler.js';
import { graphileLogger } from './task-queue.js';
import { JOBLESS_AFTER_MS, queueJoblessTasks } from './task-queue-jobs.js';
import {
  cancelRequested,
  finishTask,
  heartbeat,
  requeueOrphanedTasks,
  setProgress,
  startTask,
  TASK_JOB,
  type TaskRow,
  takeOverAbandonedTasks,
} from './tasks.repository.js';

/** Tasks one worker process runs at once (each mostly waits on a host). */
export const DEFAULT_WORKER_CONCURRENCY = 8;
/** How often a worker says it is alive for the tasks it runs, and looks for tasks of dead workers. */
export const DEFAULT_HEARTBEAT_MS = 5_000;
/** A running task whose worker has not said it is alive for this long was left by a dead worker. */
export const DEFAULT_LEASE_MS = 30_000;
/** Pauses between tries while PostgreSQL cannot be reached: doubling from the first to the last. */
const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 5_000;

export interface WorkerOptions {
  db: Database;
  /** The pool graphile-worker takes its connections from (LISTEN for new jobs, job locking). */
  pgPool: pg.Pool;
  log: Logger;
  /** Task handlers by target type (`vm`: createVmTaskHandler). */
  handlers: TaskHandlers;
  concurrency?: number;
  heartbeatMs?: number;
  leaseMs?: number;
  /** Defaults to a random id; it appears in tasks (`workerId`) and in errors about dead workers. */
  workerId?: string;
  registry?: Registry;
}

export interface RunningWorker {
  readonly workerId: string;
  /** Resolves tasks left by dead workers now (also done at start and every heartbeat). */
  sweep(): Promise<void>;
  /** Stops taking jobs and waits for the running ones. Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Runs herd's tasks from PostgreSQL. graphile-worker hands each job to exactly one worker (SKIP LOCKED, however
 * many processes run); the task row then moves queued → running for this worker only, so even a job handed out
 * twice (a worker that died holding it) runs once. While a task runs, the worker beats its heartbeat; a task
 * whose heartbeat stops for `leaseMs` is taken over by another worker's sweep, its target read back from the
 * hosts (TaskHandler.recover) and the task failed with a message saying so. One attempt per task: host actions
 * are never retried blindly.
 */
export async function startWorker(options: WorkerOptions): Promise<RunningWorker> {
  const workerId = options.workerId ?? `herd-worker-${randomBytes(4).toString('hex')}`;
  const log = options.log.child({ part: 'worker', workerId });
  const { db } = options;
  const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  const metrics = workerMetrics(options.registry);
  const running = new Set<number>();

  const context = (task: TaskRow): TaskContext => ({
    db,
    log: log.child({ taskId: task.id, action: task.action }),
    workerId,
    progress: (fraction, detail) => setProgress(db, task.id, fraction, detail),
    cancelRequested: () => cancelRequested(db, task.id),
  });

  let stopping: Promise<void> | undefined;
  /**
   * Runs `step` again while PostgreSQL cannot be reached (restarting, a failover to a standby under way): a task's
   * start and its outcome wait for the database rather than fail, and the job then ends normally (graphile-worker
   * stops a whole pool when it cannot record a job's end). Gives up once the worker stops.
   */
  const untilReachable = async <T>(what: string, step: () => Promise<T>): Promise<T> => {
    for (let pauseMs = RETRY_FIRST_MS; ; pauseMs = Math.min(pauseMs * 2, RETRY_MAX_MS)) {
      try {
        return await step();
      } catch (err) {
        if (!isDatabaseUnavailable(err) || stopping) throw err;
        log.warn(
          { err: (err as Error).message, retryInMs: pauseMs },
          `${what}: database unavailable, waiting`,
        );
        await new Promise((resolve) => setTimeout(resolve, pauseMs));
      }
    }
  };

  const finish = async (task: TaskRow, outcome: Parameters<typeof finishTask>[3]) => {
    if (await untilReachable('recording a task outcome', () => finishTask(db, task.id, workerId, outcome)))
      metrics?.finished.inc({ action: task.action, state: outcome.state });
    else
      log.warn({ taskId: task.id }, 'task was resolved by another worker meanwhile (this one looked dead)');
  };

  const recover = async (handler: TaskHandler | undefined, task: TaskRow): Promise<string | undefined> => {
    if (!handler) return undefined;
    try {
      return await handler.recover(task, context(task));
    } catch (err) {
      log.error({ err, taskId: task.id }, 'could not read the target back after a failed task');
      return `reading the target's state back failed too: ${publicMessage(err)}`;
    }
  };

  const execute = async (task: TaskRow) => {
    const handler = options.handlers[task.target_type];
    running.add(task.id);
    metrics?.running.inc();
    try {
      if (!handler) throw new Error(`no handler for tasks on ${task.target_type}`);
      const result = await handler.run(task, context(task));
      await finish(task, { state: 'done', result: result ?? undefined });
    } catch (err) {
      log.info({ err, taskId: task.id }, 'task failed'); // the task's error is publicMessage: no PostgreSQL text
      const note = await recover(handler, task);
      // A running job aborted on request (see cancelTask) ends cancelled, saying what libvirt said.
      const cancelled = await cancelRequested(db, task.id).catch(() => false);
      const error = note ? `${publicMessage(err)} (${note})` : publicMessage(err);
      await finish(task, {
        state: cancelled ? 'cancelled' : 'failed',
        error: cancelled ? `cancelled while running: ${error}` : error,
      });
    } finally {
      running.delete(task.id);
      metrics?.running.dec();
    }
  };

  const job: Task = async (payload) => {
    const taskId = Number((payload as { taskId?: unknown } | null)?.taskId);
    if (!Number.isSafeInteger(taskId)) {
      log.warn({ payload }, 'job without a task id, dropped');
      return;
    }
    const task = await untilReachable('starting a task', () => startTask(db, taskId, workerId));
    if (task) await execute(task);
  };

  let sweeping: Promise<void> | undefined;
  const sweepOnce = async () => {
    for (const task of await takeOverAbandonedTasks(db, workerId, leaseMs)) {
      running.add(task.id);
      try {
        const since = task.dead_since ? task.dead_since.toISOString() : 'its start';
        log.warn(
          { taskId: task.id, deadWorker: task.dead_worker_id },
          'resolving a task left by a dead worker',
        );
        const note = await recover(options.handlers[task.target_type], task);
        await finish(task, {
          state: 'failed',
          error:
            `the worker running this task (${task.dead_worker_id ?? 'unknown'}) stopped: no sign of life since ` +
            `${since}; the outcome is unknown${note ? `; ${note}` : ''}`,
        });
      } finally {
        running.delete(task.id);
      }
    }
    const requeued = await requeueOrphanedTasks(db, leaseMs);
    if (requeued.length)
      log.warn({ taskIds: requeued }, 'queued again: taken by a worker that died before starting them');
    const jobless = await queueJoblessTasks(db, JOBLESS_AFTER_MS);
    if (jobless.length)
      log.warn({ taskIds: jobless }, 'queued tasks had no job (their process died before adding it): added');
  };
  const sweep = () => {
    sweeping ??= sweepOnce()
      .catch((err) => log.error({ err }, 'sweep for tasks of dead workers failed'))
      .finally(() => {
        sweeping = undefined;
      });
    return sweeping;
  };

  const startRunner = () =>
    run({
      pgPool: options.pgPool,
      taskList: { [TASK_JOB]: job },
      concurrency: options.concurrency ?? DEFAULT_WORKER_CONCURRENCY,
      noHandleSignals: true,
      pollInterval: 2_000,
      logger: graphileLogger(log),
    });
  let runner: Runner = await startRunner();
  // graphile-worker shuts its whole pool down when it cannot record a job's end (the connection cut under it, as
  // in a failover): then it is started again, as often as needed, until the worker stops.
  let restarting: NodeJS.Timeout | undefined;
  const restartWhenItEnds = (r: Runner) => {
    const ended = () => {
      if (stopping || r !== runner) return;
      log.error('graphile-worker stopped on its own; starting it again');
      const again = (pauseMs: number) => {
        restarting = setTimeout(async () => {
          restarting = undefined;
          if (stopping) return;
          try {
            runner = await startRunner();
            if (stopping) await runner.stop();
            else restartWhenItEnds(runner);
          } catch (err) {
            log.warn({ err: (err as Error).message }, 'graphile-worker did not start; trying again');
            again(Math.min(pauseMs * 2, RETRY_MAX_MS));
          }
        }, pauseMs);
      };
      again(RETRY_FIRST_MS);
    };
    r.promise.then(ended, ended);
  };
  restartWhenItEnds(runner);
  await sweep();

  const timer = setInterval(() => {
    heartbeat(db, workerId, [...running]).catch((err) => log.warn({ err }, 'heartbeat failed'));
    void sweep();
  }, heartbeatMs);
  timer.unref();
  log.info({ concurrency: options.concurrency ?? DEFAULT_WORKER_CONCURRENCY }, 'task worker started');

  return {
    workerId,
    sweep,
    stop() {
      stopping ??= (async () => {
        clearInterval(timer);
        clearTimeout(restarting);
        await runner.stop().catch((err) => log.warn({ err }, 'graphile-worker stop'));
        await sweeping;
        log.info('task worker stopped');
      })();
      return stopping;
    },
  };
}

function workerMetrics(registry: Registry | undefined) {
  if (!registry) return undefined;
  return {
    finished: new Counter({
      name: 'herd_tasks_finished_total',
      help: 'Tasks this process finished, by action and end state',
      labelNames: ['action', 'state'],
      registers: [registry],
    }),
    running: new Gauge({
      name: 'herd_tasks_running',
      help: 'Tasks this process runs now',
      registers: [registry],
    }),
  };
}
