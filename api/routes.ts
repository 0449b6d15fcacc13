import type { RoutePlugin } from './app.js';

/** Every domain's routes, registered by buildApp in this order. */
export const apiRoutes: RoutePlugin[] = [];
