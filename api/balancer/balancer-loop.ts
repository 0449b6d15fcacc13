import type { Logger } from '../../lib/log.js';
import { Loop } from '../../lib/loop.js';
import { type BalancerDeps, balanceOnce, type CycleResult } from './balancer.service.js';

/** How often the balancer samples the hosts and plans every pool whose balancer is on (HERD_BALANCER_SECONDS). */
export const DEFAULT_BALANCER_INTERVAL_MS = 60_000;

export interface BalancerLoopOptions extends BalancerDeps {
  log: Logger;
  intervalMs?: number;
  clock?: () => number;
  /** false: no timer, the caller runs `cycle()` (tests). Default true. */
  autoRun?: boolean;
}

export interface BalancerLoop {
  cycle(): Promise<CycleResult>;
  stop(): Promise<void>;
}

/**
 * The balancer's loop in a worker process: a cycle every interval (balancer.service.ts `balanceOnce`). Any
 * number of workers may run it: each pool is planned by one of them at a time (advisory lock).
 */
export function startBalancer(o: BalancerLoopOptions): BalancerLoop {
  const clock = o.clock ?? Date.now;
  const log = o.log.child({ part: 'balancer' });
  const cycle = () => balanceOnce({ ...o, log }, clock());
  const loop = new Loop(o.intervalMs ?? DEFAULT_BALANCER_INTERVAL_MS, cycle);
  if (o.autoRun ?? true) loop.start((err) => log.warn({ err }, 'balancer cycle failed'));
  return { cycle, stop: () => loop.stop() };
}
