import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import { Gauge, type Registry } from 'prom-client';

/** The sampling timer's period (ms): node's default. An idle loop fires it every 10 ms, which is no delay. */
const RESOLUTION_MS = 10;
/** Each figure covers one window of this length, the last complete one. */
export const EVENT_LOOP_WINDOW_MS = 10_000;
const QUANTILES = [0.5, 0.9, 0.99, 1] as const;

/**
 * One sampler for the process (every registry reads it): node's event-loop delay histogram, read and reset every
 * EVENT_LOOP_WINDOW_MS on a timer of its own, so what a scrape sees does not depend on who else collected (ingest
 * writes the registry to the metrics store, which resets prom-client's own `nodejs_eventloop_lag_*` figures).
 */
let sampler: { last: Map<number, number> } | undefined;

function startSampler(): { last: Map<number, number> } {
  const histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  histogram.enable();
  const state = { last: new Map<number, number>() };
  const timer = setInterval(() => {
    const figures = new Map<number, number>();
    if (histogram.count > 0) {
      for (const q of QUANTILES) {
        const ns = q === 1 ? histogram.max : histogram.percentile(q * 100);
        // The histogram records the time between two firings of the sampling timer: the delay is what exceeds it.
        figures.set(q, Math.max(0, ns / 1e9 - RESOLUTION_MS / 1000));
      }
    }
    state.last = figures;
    histogram.reset();
  }, EVENT_LOOP_WINDOW_MS);
  timer.unref();
  return state;
}

/**
 * `herd_event_loop_delay_seconds{quantile="0.5"|"0.9"|"0.99"|"1"}`: how late the event loop ran a timer, over
 * the last complete 10 s window (quantile 1 is the window's worst). No value before the first window ends.
 */
export function registerEventLoopDelay(registry: Registry): void {
  sampler ??= startSampler();
  const state = sampler;
  new Gauge({
    name: 'herd_event_loop_delay_seconds',
    help: 'Event-loop delay over the last complete 10 s window, by quantile (1: the worst)',
    labelNames: ['quantile'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [q, v] of state.last) this.set({ quantile: String(q) }, v);
    },
  });
}
