import type { Database } from '../../schema/db.js';
import type { TaskState } from '../../schema/index.js';
import { effectiveRole, vmVisibilityFilter } from '../access/access.service.js';
import type { AuthUser } from '../auth/auth-user.js';
import { conflict, forbidden, notFound } from '../http/errors.js';
import { undoVmTransition } from '../vms/vm-actions.service.js';
import {
  cancelQueuedTask,
  listTasks,
  requestCancelOfRunning,
  type TaskFilter,
  type TaskRow,
  taskById,
} from './tasks.repository.js';

export function toTaskAnswer(row: TaskRow) {
  return {
    id: row.id,
    state: row.state,
    action: row.action,
    targetType: row.target_type,
    targetId: row.target_id,
    poolId: row.pool_id,
    userId: row.user_id,
    args: row.args,
    ...(row.progress !== null ? { progress: row.progress } : {}),
    ...(row.progress_detail !== null ? { progressDetail: row.progress_detail } : {}),
    ...(row.error !== null ? { error: row.error } : {}),
    ...(row.result !== null ? { result: row.result } : {}),
    ...(row.cancel_requested_at ? { cancelRequested: true } : {}),
    workerId: row.worker_id,
    createdAt: row.created_at.toISOString(),
    startedAt: row.started_at?.toISOString() ?? null,
    finishedAt: row.finished_at?.toISOString() ?? null,
  };
}
export type TaskAnswer = ReturnType<typeof toTaskAnswer>;

/** Tasks of the pools the caller sees: all of them where it is admin or monitor, its own where it is user. */
export async function listVisibleTasks(db: Database, user: AuthUser, filter: TaskFilter) {
  const { items, total } = await listTasks(db, filter, await vmVisibilityFilter(db, user));
  return { items: items.map(toTaskAnswer), total };
}

/** The task if the caller may see it (404 otherwise), with the caller's role on its pool. */
async function visibleTask(db: Database, user: AuthUser, id: number) {
  const task = await taskById(db, id);
  if (!task) throw notFound('task');
  if (user.isSuperAdmin) return { task, role: 'super' as const };
  const role = task.pool_id === null ? null : await effectiveRole(db, user, task.pool_id);
  if (role === null) throw notFound('task');
  if (role === 'user' && task.user_id !== user.id && !(await ownsTarget(db, user, task)))
    throw notFound('task');
  return { task, role };
}

async function ownsTarget(db: Database, user: AuthUser, task: TaskRow): Promise<boolean> {
  if (task.target_type !== 'vm') return false;
  const vm = await db
    .selectFrom('vms')
    .select('owner_id')
    .where('id', '=', task.target_id)
    .executeTakeFirst();
  return vm?.owner_id === user.id;
}

export async function getTask(db: Database, user: AuthUser, id: number): Promise<TaskAnswer> {
  return toTaskAnswer((await visibleTask(db, user, id)).task);
}

/**
 * Cancels a task that has not started: its target goes back to how it was (a VM to its previous state and host,
 * releasing what the request claimed). A running save, restore or live migration is cancelled by its worker,
 * which aborts the host's job (libvirt `DomainAbortJob`) and ends the task `cancelled`, the VM read back from
 * its host: the answer is then the task still running, `cancelRequested` set. The one who asked, or an admin of the
 * pool, may cancel. 409 `invalid_state` for any other task a worker has started.
 */
export async function cancelTask(db: Database, user: AuthUser, id: number): Promise<TaskAnswer> {
  const { task, role } = await visibleTask(db, user, id);
  if (
    role === 'monitor' ||
    (role === 'user' && task.user_id !== user.id && !(await ownsTarget(db, user, task)))
  ) {
    throw forbidden('only the one who asked or an admin can cancel a task');
  }
  const cancelled = await db.transaction().execute(async (trx) => {
    const row = await cancelQueuedTask(trx, id);
    if (row?.target_type === 'vm') await undoVmTransition(trx, row);
    return row;
  });
  if (!cancelled) {
    const running = await requestCancelOfRunning(db, id);
    if (running) return toTaskAnswer(running);
    const now = (await taskById(db, id))!;
    throw conflict(
      'invalid_state',
      `task ${id} is ${now.state}: only queued tasks, and running saves, restores and migrations, can be cancelled`,
      { state: now.state },
    );
  }
  return toTaskAnswer(cancelled);
}

export const TASK_STATES: readonly TaskState[] = ['queued', 'running', 'done', 'failed', 'cancelled'];
