import { Worker } from 'node:worker_threads';
import { afterEach, expect, test } from 'vitest';
import { compileMatcher, matchersProblem, silences } from './silence-match.js';

/**
 * `(?:.*){25}!` backtracks exponentially in a backtracking engine (JavaScript's RegExp: a 30-character label
 * takes longer than the suite); RE2 matches it in time linear in the label. The matching runs in a worker thread:
 * with a backtracking engine it never ends, and this test fails by vitest's timeout instead of blocking the run.
 */
let worker: Worker | undefined;
afterEach(() => worker?.terminate());

test('a pattern that backtracks exponentially is matched in linear time, against any label', async () => {
  const code = `
    import { parentPort, workerData } from 'node:worker_threads';
    import { tsImport } from 'tsx/esm/api';
    const { compileMatcher, silences } = await tsImport(workerData.module, workerData.module);
    const value = '(?:.*){25}!';
    const answers = [];
    for (const name of ['host', 'alertname']) {
      const m = compileMatcher({ name, op: '=~', value });
      const not = compileMatcher({ name, op: '!~', value });
      for (let length = 10; length <= 10000; length *= 10) {
        const label = 'a'.repeat(length);
        answers.push([name, length, m({ [name]: label }), not({ [name]: label }), m({ [name]: label + '!' })]);
      }
      answers.push([name, 'silence', silences({ pool_id: null, matchers: [{ name, op: '=~', value }] }, { [name]: 'x'.repeat(5000) }, [])]);
    }
    parentPort.postMessage(answers);
  `;
  worker = new Worker(code, {
    eval: true,
    workerData: { module: new URL('./silence-match.ts', import.meta.url).href },
  });
  const answers = await new Promise((resolve, reject) => {
    worker!.once('message', resolve);
    worker!.once('error', reject);
  });
  const expected = [];
  for (const name of ['host', 'alertname']) {
    for (const length of [10, 100, 1000, 10_000]) expected.push([name, length, false, true, true]);
    expected.push([name, 'silence', false]);
  }
  expect(answers).toEqual(expected);
});

test('matchers stay anchored as before: web.* matches web1, not aweb1', () => {
  const m = compileMatcher({ name: 'host', op: '=~', value: 'web.*|db[0-9]+' });
  expect(['web1', 'db12', 'aweb1', 'db', 'web1x'].map((host) => m({ host }))).toEqual([
    true,
    true,
    false,
    false,
    true,
  ]);
});

test('patterns RE2 cannot express (backreferences, lookaround) are refused, naming the field', () => {
  for (const value of ['(a)\\1', '(?=a)a', '(?<!b)a', '(?!x).*'])
    expect(
      matchersProblem([
        { name: 'host', op: '=', value: 'ok' },
        { name: 'host', op: '=~', value },
      ]),
      value,
    ).toMatch(/^matchers\.1\.value: not a regular expression RE2 accepts/);
  expect(matchersProblem([{ name: 'host', op: '!~', value: 'web-[0-9]{1,3}' }])).toBeNull();
  // One stored before the check silences nothing rather than failing the alert list.
  expect(
    silences({ pool_id: null, matchers: [{ name: 'a', op: '=~', value: '(a)\\1' }] }, { a: 'aa' }, []),
  ).toBe(false);
});
