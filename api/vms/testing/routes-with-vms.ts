import type { RoutePlugin } from '../../app.js';
import { apiRoutes } from '../../routes.js';
import { taskRoutes } from '../../tasks/tasks.routes.js';
import { vmRoutes } from '../vms.routes.js';

/** True once api/routes.ts (and so `herd serve`) serves the VM and task routes. */
export const cliServesVms = apiRoutes.includes(vmRoutes) && apiRoutes.includes(taskRoutes);

/** The API routes with the VM and task routes, whether or not api/routes.ts lists them yet. */
export const routesWithVms: RoutePlugin[] = cliServesVms ? apiRoutes : [...apiRoutes, vmRoutes, taskRoutes];
