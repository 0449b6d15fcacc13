import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { registerEventLoopDelay } from './event-loop-delay.js';

export { Counter, Gauge, Histogram, Registry };

/**
 * herd's own metrics, one registry per running herd (tests run several in one process).
 * Parts register what they count here; `GET /metrics` serves it, and ingest writes it to the metrics store.
 */
export function createRegistry(options: { defaultMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  if (options.defaultMetrics) {
    collectDefaultMetrics({ register: registry, prefix: 'herd_process_' });
    // prom-client names three gauges `…_total`, which Prometheus reserves for counters: each is the sum of the
    // gauge of the same name without `_total` (by type), e.g. sum(herd_process_nodejs_active_handles).
    for (const name of ['active_handles', 'active_requests', 'active_resources'])
      registry.removeSingleMetric(`herd_process_nodejs_${name}_total`);
    registerEventLoopDelay(registry);
  }
  return registry;
}
