import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Waits before retry number `attempt` (1, 2, ...): exponential from `minMs` up to `maxMs`, with jitter
 * (a random half to full delay) so that several writers do not retry in step. False if aborted.
 */
export async function backoff(
  attempt: number,
  minMs: number,
  maxMs: number,
  signal: AbortSignal,
): Promise<boolean> {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt - 1, 20));
  try {
    await sleep(ceiling * (0.5 + Math.random() / 2), undefined, { signal });
    return true;
  } catch {
    return false;
  }
}

/**
 * Waits until the delivery loop is woken (`setWake` receives the function that wakes it, and undefined once it
 * was called) or `signal` aborts.
 */
export function untilWoken(
  signal: AbortSignal,
  setWake: (wake: (() => void) | undefined) => void,
): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      signal.removeEventListener('abort', done);
      setWake(undefined);
      resolve();
    };
    setWake(done);
    signal.addEventListener('abort', done);
  });
}
