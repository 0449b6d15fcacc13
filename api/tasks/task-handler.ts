import type { Logger } from '../../lib/log.js';
import type { Database } from '../../schema/db.js';
import type { TaskRow } from './tasks.repository.js';

export interface TaskContext {
  db: Database;
  log: Logger;
  workerId: string;
  /**
   * Records how far a long task is (0..1), shown as the task's `progress`; `detail` says what it was measured
   * from (`progressDetail`, e.g. libvirt's job info).
   */
  progress(fraction: number, detail?: Record<string, unknown>): Promise<void>;
  /** Whether someone asked to cancel the task while it runs (a job libvirt can abort: save, restore, migration). */
  cancelRequested(): Promise<boolean>;
}

/**
 * Carries out the tasks of one target type (`vm`, ...). The worker owns the task's row; the handler owns the
 * target's.
 */
export interface TaskHandler {
  /** Does the work and leaves the target in its end state; what it answers becomes the task's `result`. Throws to fail. */
  run(task: TaskRow, ctx: TaskContext): Promise<unknown>;
  /**
   * After a failure, or when the worker running the task died: reads the target's real state back (from
   * libvirt) and leaves the target true to it, out of its transitional state. Answers a note for the task's error.
   */
  recover(task: TaskRow, ctx: TaskContext): Promise<string | undefined>;
}

export type TaskHandlers = Readonly<Record<string, TaskHandler>>;
