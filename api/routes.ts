import { permissionRoutes } from './access/permissions.routes.js';
import { alertRoutes } from './alerts/alerts.routes.js';
import type { RoutePlugin } from './app.js';
import { auditRoutes } from './audit/audit.routes.js';
import { authRoutes } from './auth/auth.routes.js';
import { balancerRoutes } from './balancer/balancer.routes.js';
import { eventRoutes } from './events/events.routes.js';
import { fleetMetricsRoutes } from './fleet-metrics/fleet-metrics.routes.js';
import { forecastRoutes } from './forecast/forecast.routes.js';
import { hostRoutes } from './hosts/hosts.routes.js';
import { imageRoutes } from './images/images.routes.js';
import { metricsRoutes } from './metrics/metrics.routes.js';
import { poolRoutes } from './pools/pools.routes.js';
import { quotaRoutes } from './quota/quota.routes.js';
import { quotaEnforcementRoutes } from './quota-enforcer/enforcement.routes.js';
import { rightsizingRoutes } from './rightsizing/rightsizing.routes.js';
import { smartPoolRoutes } from './smart-pools/smart-pools.routes.js';
import { storageRoutes } from './storage/storage.routes.js';
import { taskRoutes } from './tasks/tasks.routes.js';
import { userRoutes } from './users/users.routes.js';
import { vmConsoleRoutes } from './vms/vm-console.routes.js';
import { vmRoutes } from './vms/vms.routes.js';

/** Every domain's routes, registered by buildApp in this order. */
export const apiRoutes: RoutePlugin[] = [
  // First: its onRequest hook authenticates every /api/v1 route registered after it.
  authRoutes,
  userRoutes,
  poolRoutes,
  permissionRoutes,
  quotaRoutes,
  smartPoolRoutes,
  auditRoutes,
  hostRoutes,
  storageRoutes,
  imageRoutes,
  vmRoutes,
  vmConsoleRoutes,
  taskRoutes,
  metricsRoutes,
  alertRoutes,
  quotaEnforcementRoutes,
  fleetMetricsRoutes,
  eventRoutes,
  forecastRoutes,
  rightsizingRoutes,
  balancerRoutes,
];
