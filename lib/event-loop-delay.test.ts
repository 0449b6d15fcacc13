import { expect, test } from 'vitest';
import { EVENT_LOOP_WINDOW_MS } from './event-loop-delay.js';
import { createRegistry } from './metrics.js';
import { waitFor } from './testing/wait.js';

/** The figures of herd_event_loop_delay_seconds by quantile, as /metrics serves them. */
async function delays(registry: ReturnType<typeof createRegistry>): Promise<Map<string, number>> {
  const text = await registry.metrics();
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^herd_event_loop_delay_seconds\{quantile="([^"]+)"\} (\S+)$/gm))
    out.set(m[1], Number(m[2]));
  return out;
}

test('herd_event_loop_delay_seconds reports a blocked event loop over its window, whoever else collects', async () => {
  const registry = createRegistry({ defaultMetrics: true });
  // Another registry of the same process (ingest's own writer collects one too) reads the same window.
  const other = createRegistry({ defaultMetrics: true });
  // A window starts: the loop is blocked 300 ms in it.
  await new Promise((r) => setTimeout(r, 50));
  const blockedAt = Date.now();
  while (Date.now() - blockedAt < 300);
  await waitFor(
    async () => ((await delays(registry)).get('1') ?? 0) >= 0.25,
    2 * EVENT_LOOP_WINDOW_MS + 2_000,
    200,
  );
  const figures = await delays(registry);
  expect([...figures.keys()].sort()).toEqual(['0.5', '0.9', '0.99', '1']);
  expect(figures.get('1')).toBeLessThan(1);
  // The median is a timer's ordinary lateness, not the block (the 10 ms sampling period taken off).
  expect(figures.get('0.5')).toBeLessThan(0.05);
  expect(await delays(other)).toEqual(figures);
  // A summary: its sum and count add up every window since the process started, the blocked one included.
  const text = await registry.metrics();
  expect(text).toContain('# TYPE herd_event_loop_delay_seconds summary\n');
  expect(Number(/^herd_event_loop_delay_seconds_sum (\S+)$/m.exec(text)?.[1])).toBeGreaterThanOrEqual(0.25);
  expect(Number(/^herd_event_loop_delay_seconds_count (\S+)$/m.exec(text)?.[1])).toBeGreaterThan(0);
  // The next window, with no block, no longer shows it.
  await waitFor(
    async () => ((await delays(registry)).get('1') ?? 1) < 0.25,
    2 * EVENT_LOOP_WINDOW_MS + 2_000,
    200,
  );
}, 60_000);
