import { expect, test } from 'vitest';
import { CoalescingBatcher } from './coalescing-batcher.js';

/** A batcher whose runs finish when the test says, recording the batches it was given. */
function controlled(options: { maxBatch: number; maxInFlight: number }) {
  const batches: number[][] = [];
  const finish: Array<() => void> = [];
  const batcher = new CoalescingBatcher<number, number>(
    (items) =>
      new Promise((resolve) => {
        batches.push(items);
        finish.push(() =>
          resolve(
            items.map((n) =>
              n < 0
                ? { status: 'rejected', reason: new Error(`bad ${n}`) }
                : { status: 'fulfilled', value: n * 10 },
            ),
          ),
        );
      }),
    options,
  );
  const turn = () => new Promise((resolve) => setImmediate(resolve));
  return { batcher, batches, finish, turn };
}

test('items of one turn go together; items arriving while a batch is in flight go together after it', async () => {
  const { batcher, batches, finish, turn } = controlled({ maxBatch: 10, maxInFlight: 1 });
  const first = [batcher.submit(1), batcher.submit(2)];
  await turn();
  expect(batches).toEqual([[1, 2]]);
  const later = [batcher.submit(3)];
  await turn();
  later.push(batcher.submit(4), batcher.submit(-5));
  await turn();
  expect(batches).toEqual([[1, 2]]);
  finish[0]();
  expect(await Promise.all(first)).toEqual([10, 20]);
  await turn();
  expect(batches).toEqual([
    [1, 2],
    [3, 4, -5],
  ]);
  finish[1]();
  const settled = await Promise.allSettled(later);
  expect(settled.map((s) => (s.status === 'fulfilled' ? s.value : (s.reason as Error).message))).toEqual([
    30,
    40,
    'bad -5',
  ]);
});

test('at most maxBatch items per batch and maxInFlight batches at once; a failed run fails its items only', async () => {
  let calls = 0;
  const batches: number[][] = [];
  const batcher = new CoalescingBatcher<number, number>(
    async (items) => {
      batches.push(items);
      calls++;
      if (calls === 1) throw new Error('down');
      return items.map((n) => ({ status: 'fulfilled', value: n }));
    },
    { maxBatch: 2, maxInFlight: 2 },
  );
  const answers = await Promise.allSettled([1, 2, 3, 4, 5].map((n) => batcher.submit(n)));
  expect(batches).toEqual([[1, 2], [3, 4], [5]]);
  expect(answers.map((a) => a.status)).toEqual([
    'rejected',
    'rejected',
    'fulfilled',
    'fulfilled',
    'fulfilled',
  ]);
});
