import type { FastifyInstance } from 'fastify';
import { Gauge } from '../../lib/metrics.js';
import type { AppDeps } from '../app.js';
import { errorResponses, idParam, listOf } from '../http/schemas.js';
import type { TaskFilter } from './tasks.repository.js';
import { countTasksByState } from './tasks.repository.js';
import { taskListQuery, taskSchema } from './tasks.schemas.js';
import { cancelTask, getTask, listVisibleTasks, TASK_STATES } from './tasks.service.js';

const tags = ['tasks'];

export async function taskRoutes(app: FastifyInstance, deps: AppDeps): Promise<void> {
  registerTaskGauge(deps);

  app.get<{ Querystring: TaskFilter }>(
    '/api/v1/tasks',
    {
      schema: {
        tags,
        summary: 'Tasks of the pools the caller sees, newest first; filter by state, action, pool or target',
        querystring: taskListQuery,
        response: { 200: listOf(taskSchema), ...errorResponses },
      },
    },
    async (request) => listVisibleTasks(deps.db, request.user, request.query),
  );

  app.get<{ Params: { id: number } }>(
    '/api/v1/tasks/:id',
    {
      schema: {
        tags,
        summary: 'One task',
        params: idParam,
        response: { 200: taskSchema, ...errorResponses },
      },
    },
    async (request) => getTask(deps.db, request.user, request.params.id),
  );

  app.post<{ Params: { id: number } }>(
    '/api/v1/tasks/:id/cancel',
    {
      schema: {
        tags,
        summary:
          'Cancel a queued task (its target goes back to how it was) or a running save, restore or live migration (its host job is aborted); 409 for any other started task',
        params: idParam,
        response: { 200: taskSchema, ...errorResponses },
      },
    },
    async (request) => cancelTask(deps.db, request.user, request.params.id),
  );
}

/** `herd_tasks{state}` on /metrics: tasks in the database by state, counted when scraped. */
function registerTaskGauge(deps: AppDeps): void {
  if (deps.registry.getSingleMetric('herd_tasks')) return;
  new Gauge({
    name: 'herd_tasks',
    help: 'Tasks in the database by state',
    labelNames: ['state'],
    registers: [deps.registry],
    // While PostgreSQL is away the last counts stay: /metrics must answer during an outage, when it matters most.
    async collect() {
      const counts = await countTasksByState(deps.db).catch(() => undefined);
      if (counts) for (const state of TASK_STATES) this.set({ state }, counts.get(state) ?? 0);
    },
  });
}
