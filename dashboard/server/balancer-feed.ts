import type { BalancerMoveEvent } from '../../api/alerts/alert-feed.js';
import type { LivePublication } from './live.js';

/** A balancer move as the dashboard's live feed carries it (event `balancer`): to the hardware pool's room. */
export function balancerPublication(e: BalancerMoveEvent): LivePublication {
  return { name: 'balancer', poolId: e.poolId, data: e };
}
