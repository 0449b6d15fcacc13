import { type RawBuilder, type Selectable, sql } from 'kysely';
import type { Database } from '../../schema/db.js';
import type { TaskState, TasksTable } from '../../schema/index.js';

export type TaskRow = Selectable<TasksTable>;

/** The graphile-worker task identifier every herd task runs under; its payload is `{taskId}`. */
export const TASK_JOB = 'herd_task';

export interface NewTask {
  userId: number | null;
  action: string;
  targetType: string;
  targetId: number;
  poolId: number | null;
  args: Record<string, unknown>;
}

/** The VALUES of a task row to insert: `INSERT INTO tasks ${TASK_COLUMNS} ${taskValues(task)}`. */
export const TASK_COLUMNS = sql`(user_id, action, target_type, target_id, pool_id, args)`;
export function taskValues(task: NewTask) {
  return sql`VALUES (${task.userId}::int, ${task.action}::text, ${task.targetType}::text, ${task.targetId}::int,
    ${task.poolId}::int, ${JSON.stringify(task.args)}::jsonb)`;
}

/**
 * The graphile-worker job of a task, for a statement that inserts the task: one attempt (a host action is never
 * retried blindly; the task records the failure instead), keyed by the task so it can be removed or replaced.
 */
export function taskJob(taskId: RawBuilder<number>) {
  return sql`graphile_worker.add_job(${TASK_JOB}, json_build_object('taskId', ${taskId}), max_attempts => 1,
    job_key => 'task:' || ${taskId})`;
}

/**
 * The jobs of some tasks as taskJob makes one, through add_jobs (graphile-worker's bulk add_job, documented as
 * experimental): one NOTIFY for the lot. A statement answering how many were added.
 */
export function taskJobs(taskIds: RawBuilder<number[]>) {
  return sql<number>`SELECT count(*) FROM graphile_worker.add_jobs(ARRAY(
    SELECT (${TASK_JOB}, json_build_object('taskId', t.id), NULL, NULL, 1, 'task:' || t.id, NULL, NULL)::graphile_worker.job_spec
    FROM unnest(${taskIds}::int[]) AS t(id)))`;
}

/**
 * Inserts the task and queues its job in the caller's transaction: a rolled-back request leaves neither, and
 * the job becomes visible to workers (and NOTIFY wakes them) only at commit.
 */
export async function insertQueuedTask(db: Database, task: NewTask): Promise<number> {
  const { rows } = await sql<{ id: number }>`
    WITH t AS (INSERT INTO tasks ${TASK_COLUMNS} ${taskValues(task)} RETURNING id)
    SELECT t.id FROM t, LATERAL ${taskJob(sql<number>`t.id`)} j`.execute(db);
  return rows[0].id;
}

export async function taskById(db: Database, id: number): Promise<TaskRow | undefined> {
  return db.selectFrom('tasks').selectAll().where('id', '=', id).executeTakeFirst();
}

/** queued → running for one worker; undefined when the task is not queued any more (cancelled, resolved). */
export async function startTask(db: Database, id: number, workerId: string): Promise<TaskRow | undefined> {
  return db
    .updateTable('tasks')
    .set({
      state: 'running',
      started_at: sql`now()`,
      worker_id: workerId,
      heartbeat_at: sql`now()`,
      progress: 0,
    })
    .where('id', '=', id)
    .where('state', '=', 'queued')
    .returningAll()
    .executeTakeFirst();
}

/** Ends a running task of this worker; false when it was resolved meanwhile (e.g. declared dead). */
export async function finishTask(
  db: Database,
  id: number,
  workerId: string,
  outcome: { state: 'done' | 'failed' | 'cancelled'; error?: string; result?: unknown },
): Promise<boolean> {
  const res = await db
    .updateTable('tasks')
    .set({
      state: outcome.state,
      error: outcome.error ?? null,
      result: outcome.result === undefined ? null : JSON.stringify(outcome.result),
      progress: outcome.state === 'done' ? 1 : sql`progress`,
      finished_at: sql`now()`,
    })
    .where('id', '=', id)
    .where('state', '=', 'running')
    .where('worker_id', '=', workerId)
    .executeTakeFirst();
  return res.numUpdatedRows > 0n;
}

export async function setProgress(
  db: Database,
  id: number,
  progress: number,
  detail?: Record<string, unknown>,
): Promise<void> {
  await db
    .updateTable('tasks')
    .set({
      progress: Math.min(1, Math.max(0, progress)),
      ...(detail ? { progress_detail: JSON.stringify(detail) } : {}),
    })
    .where('id', '=', id)
    .where('state', '=', 'running')
    .execute();
}

/** A worker's sign of life for the tasks it runs. */
export async function heartbeat(db: Database, workerId: string, ids: number[]): Promise<void> {
  if (!ids.length) return;
  await db
    .updateTable('tasks')
    .set({ heartbeat_at: sql`now()` })
    .where('id', 'in', ids)
    .where('worker_id', '=', workerId)
    .where('state', '=', 'running')
    .execute();
}

/**
 * Takes over the running tasks whose worker stopped beating for `leaseMs` (it died, or lost the database):
 * they become this worker's, with a fresh heartbeat, so that it can resolve them; another sweeper would only
 * take them again if this one died too. SKIP LOCKED: two sweepers never take the same task.
 */
export async function takeOverAbandonedTasks(
  db: Database,
  workerId: string,
  leaseMs: number,
): Promise<Array<TaskRow & { dead_worker_id: string | null; dead_since: Date | null }>> {
  const { rows } = await sql<TaskRow & { dead_worker_id: string | null; dead_since: Date | null }>`
    WITH dead AS (
      SELECT id, worker_id, heartbeat_at FROM tasks
      WHERE state = 'running' AND heartbeat_at < now() - make_interval(secs => ${leaseMs / 1000})
      ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED
    )
    UPDATE tasks SET worker_id = ${workerId}, heartbeat_at = now()
    FROM dead WHERE tasks.id = dead.id
    RETURNING tasks.*, dead.worker_id AS dead_worker_id, dead.heartbeat_at AS dead_since`.execute(db);
  return rows;
}

/**
 * Tasks still queued whose job a worker locked more than `leaseMs` ago without starting them: that worker died
 * between taking the job and starting the task. Their jobs are queued again (the job key moves to a new job).
 */
export async function requeueOrphanedTasks(db: Database, leaseMs: number): Promise<number[]> {
  const { rows } = await sql<{ id: number }>`
    SELECT t.id FROM tasks t
    JOIN graphile_worker._private_jobs j ON j.key = 'task:' || t.id
    WHERE t.state = 'queued' AND j.locked_at < now() - make_interval(secs => ${leaseMs / 1000})
    ORDER BY t.id LIMIT 100`.execute(db);
  for (const { id } of rows) await sql`SELECT ${taskJob(sql<number>`${id}::int`)}`.execute(db);
  return rows.map((r) => r.id);
}

/** queued → cancelled; undefined when it was not queued. Its job is removed unless a worker holds it. */
export async function cancelQueuedTask(db: Database, id: number): Promise<TaskRow | undefined> {
  const row = await db
    .updateTable('tasks')
    .set({ state: 'cancelled', finished_at: sql`now()`, error: 'cancelled before it started' })
    .where('id', '=', id)
    .where('state', '=', 'queued')
    .returningAll()
    .executeTakeFirst();
  if (row) await sql`SELECT graphile_worker.remove_job(${`task:${id}`})`.execute(db);
  return row;
}

/** Actions whose running job libvirt can abort (a save, a restore, a live migration). */
export const ABORTABLE_ACTIONS: readonly string[] = ['save', 'restore', 'migrate'];

/**
 * Notes a cancel request on a running task whose host job can be aborted (the worker running it acts on it);
 * undefined when the task is not such a running task.
 */
export async function requestCancelOfRunning(db: Database, id: number): Promise<TaskRow | undefined> {
  return db
    .updateTable('tasks')
    .set({ cancel_requested_at: sql`coalesce(cancel_requested_at, now())` })
    .where('id', '=', id)
    .where('state', '=', 'running')
    .where('action', 'in', [...ABORTABLE_ACTIONS])
    .returningAll()
    .executeTakeFirst();
}

/** Whether someone asked to cancel the task while it ran. */
export async function cancelRequested(db: Database, id: number): Promise<boolean> {
  const row = await db
    .selectFrom('tasks')
    .select('cancel_requested_at')
    .where('id', '=', id)
    .executeTakeFirst();
  return !!row?.cancel_requested_at;
}

export interface TaskFilter {
  state?: TaskState;
  action?: string;
  poolId?: number;
  targetType?: string;
  targetId?: number;
  limit: number;
  offset: number;
}

/** Which tasks a caller sees: all of some pools, only its own (asked by it, or on its VMs) in others. */
export type TaskVisibility = 'all' | { allInPools: number[]; ownInPools: number[]; userId: number };

export async function listTasks(
  db: Database,
  filter: TaskFilter,
  visibility: TaskVisibility,
): Promise<{ items: TaskRow[]; total: number }> {
  let q = db.selectFrom('tasks');
  if (filter.state) q = q.where('tasks.state', '=', filter.state);
  if (filter.action) q = q.where('tasks.action', '=', filter.action);
  if (filter.poolId !== undefined) q = q.where('tasks.pool_id', '=', filter.poolId);
  if (filter.targetType) q = q.where('tasks.target_type', '=', filter.targetType);
  if (filter.targetId !== undefined) q = q.where('tasks.target_id', '=', filter.targetId);
  if (visibility !== 'all') {
    const { allInPools, ownInPools, userId } = visibility;
    q = q.where(
      sql<boolean>`(tasks.pool_id = any(${allInPools}::int[]) OR (tasks.pool_id = any(${ownInPools}::int[]) AND
        (tasks.user_id = ${userId} OR EXISTS (SELECT 1 FROM vms WHERE tasks.target_type = 'vm'
          AND vms.id = tasks.target_id AND vms.owner_id = ${userId}))))`,
    );
  }
  const [items, count] = await Promise.all([
    q.selectAll('tasks').orderBy('tasks.id', 'desc').limit(filter.limit).offset(filter.offset).execute(),
    q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow(),
  ]);
  return { items, total: Number(count.n) };
}

export async function countTasksByState(db: Database): Promise<Map<TaskState, number>> {
  const rows = await db
    .selectFrom('tasks')
    .select(['state', (eb) => eb.fn.countAll<number>().as('n')])
    .groupBy('state')
    .execute();
  return new Map(rows.map((r) => [r.state, Number(r.n)]));
}
