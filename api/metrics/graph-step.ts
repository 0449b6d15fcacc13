/** collectd's default interval: raw points are no closer than this, so finer buckets would be empty. */
export const RAW_STEP_SECONDS = 10;
/** A graph as wide as this when the caller does not say. */
export const DEFAULT_WIDTH = 1000;
export const MAX_WIDTH = 5000;

// Steps a person reads easily on a time axis; the largest is used as a multiple beyond it.
const NICE_STEPS = [
  10, 15, 20, 30, 60, 120, 180, 300, 600, 900, 1200, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400,
];

/**
 * The bucket width of a graph over [from, to): never more buckets than `width` pixels, never finer than the
 * data (`base`: raw points or rollup buckets), a multiple of `base`, and at least the step asked for.
 */
export function graphStep(options: {
  from: number;
  to: number;
  width?: number;
  step?: number;
  base: number;
}): number {
  const width = Math.min(Math.max(options.width ?? DEFAULT_WIDTH, 1), MAX_WIDTH);
  const wanted = Math.max(options.step ?? 0, (options.to - options.from) / width, options.base);
  const nice = NICE_STEPS.find((s) => s >= wanted) ?? Math.ceil(wanted / 86_400) * 86_400;
  return Math.ceil(nice / options.base) * options.base;
}
