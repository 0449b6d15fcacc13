import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import { type Registry, Summary } from 'prom-client';

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
interface SamplerState {
  /** The last complete window's delay (s) by quantile; empty before the first window ends. */
  last: Map<number, number>;
  /** Since the process started: the timer firings sampled, and their delays added up (s). */
  count: number;
  sum: number;
}

let sampler: SamplerState | undefined;

function startSampler(): SamplerState {
  const histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  histogram.enable();
  const state: SamplerState = { last: new Map(), count: 0, sum: 0 };
  // The histogram records the time between two firings of the sampling timer: the delay is what exceeds it.
  const delay = (ns: number) => Math.max(0, ns / 1e9 - RESOLUTION_MS / 1000);
  const timer = setInterval(() => {
    const figures = new Map<number, number>();
    if (histogram.count > 0) {
      for (const q of QUANTILES)
        figures.set(q, delay(q === 1 ? histogram.max : histogram.percentile(q * 100)));
      state.count += histogram.count;
      state.sum += delay(histogram.mean) * histogram.count;
    }
    state.last = figures;
    histogram.reset();
  }, EVENT_LOOP_WINDOW_MS);
  timer.unref();
  return state;
}

const NAME = 'herd_event_loop_delay_seconds';
const HELP =
  'Event-loop delay: quantiles over the last complete 10 s window (1: the worst); sum and count since start';

/**
 * A summary whose quantiles the sampler has computed already (prom-client's Summary computes its own from
 * observations): `get()` reads the sampler's state.
 */
class WindowSummary extends Summary {
  constructor(
    registry: Registry,
    private readonly state: SamplerState,
  ) {
    super({ name: NAME, help: HELP, registers: [registry] });
  }

  override async get(): ReturnType<Summary['get']> {
    const metric = {
      name: NAME,
      help: HELP,
      type: 'summary',
      aggregator: 'sum',
      values: [
        ...[...this.state.last].map(([q, value]) => ({ labels: { quantile: q }, value })),
        { metricName: `${NAME}_sum`, labels: {}, value: this.state.sum },
        { metricName: `${NAME}_count`, labels: {}, value: this.state.count },
      ],
    };
    // What the registry reads of a metric (prom-client types `type` as an enum it does not export at run time).
    return metric as unknown as Awaited<ReturnType<Summary['get']>>;
  }
}

/**
 * `herd_event_loop_delay_seconds`, a summary: `{quantile="0.5"|"0.9"|"0.99"|"1"}` is how late the event loop ran
 * a timer over the last complete 10 s window (quantile 1 is the window's worst), no quantile before the first
 * window ends; `_sum` and `_count` add up the delays and the timer firings since the process started.
 */
export function registerEventLoopDelay(registry: Registry): void {
  sampler ??= startSampler();
  new WindowSummary(registry, sampler);
}
