// Imported first by the CLI, so that it holds from the first allocation. V8 sizes its heap for throughput:
// the young generation grows to two 16 MiB semi-spaces once anything survives a scavenge, and the old
// generation may double before it is collected. herd's ingest allocates fast and keeps little (the live view
// sits in typed arrays, off the heap), so that slack was most of its memory: with 2,000 hosts sending, these
// limits take its RSS from ~170 MiB to ~130 MiB at the same CPU (`npm run bench:ingest`).
//
// `node --max-semi-space-size` caps the young generation, but only on node's command line. V8 reads the growth
// factor of the semi-spaces at each growth, so the cap is kept from here instead: growth is held (factor 1)
// and, after a collection, allowed while the young generation is below the cap (it shrinks when herd idles).
// V8 puts the factor back to 2 when an isolate starts (a worker thread), hence after every collection.
import { PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';

const YOUNG_GENERATION_BYTES = 8 * 1024 * 1024;

// The old generation is collected once it is 30% above what survived the last collection (V8: up to 4×).
v8.setFlagsFromString('--heap-growing-percent=30');
v8.setFlagsFromString('--semi-space-growth-factor=1');

new PerformanceObserver(() => {
  const young = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;
  const factor = young > 0 && young < YOUNG_GENERATION_BYTES ? Math.ceil(YOUNG_GENERATION_BYTES / young) : 1;
  v8.setFlagsFromString(`--semi-space-growth-factor=${factor}`);
}).observe({ entryTypes: ['gc'] });
