import { describe, expect, test } from 'vitest';
import { INITIAL_STATE, type InstanceState, type Observation, step, windowValue } from './alert-state.js';

const rule = {
  condition: 'above' as const,
  threshold: 1.5,
  pendingSeconds: 300,
  keepFiringSeconds: 120,
  nodataPolicy: 'nodata' as const,
  errorPolicy: 'error' as const,
  repeatIntervalSeconds: 3600,
};
const v = (value: number): Observation => ({ kind: 'value', value });
const s = (t: number) => t * 1000;

/** Runs observations at the given seconds; returns the states and notifications seen. */
function run(steps: Array<[number, Observation]>, r: Parameters<typeof step>[2] = rule) {
  let state: InstanceState = INITIAL_STATE;
  const out: Array<[number, string, string | null]> = [];
  for (const [t, obs] of steps) {
    const { next, notify } = step(state, obs, r, s(t));
    state = next;
    out.push([t, next.state, notify]);
  }
  return { state, out };
}

describe('alert state machine', () => {
  test('ok → pending → firing after the pending period → ok after keep-firing', () => {
    const { out } = run([
      [0, v(1)],
      [10, v(2)],
      [300, v(2)],
      [310, v(2)],
      [320, v(1)],
      [420, v(1)],
      [430, v(1)],
      [440, v(1)],
    ]);
    expect(out).toEqual([
      [0, 'ok', null],
      [10, 'pending', null],
      [300, 'pending', null],
      [310, 'firing', 'firing'],
      [320, 'firing', null],
      [420, 'firing', null],
      [430, 'ok', 'resolved'],
      [440, 'ok', null],
    ]);
  });

  test('unknown (a process just started) keeps pending with its start, firing unresolved, an absent rule quiet', () => {
    const unknown: Observation = { kind: 'unknown' };
    const pending = run([
      [0, v(2)],
      [100, unknown],
      [200, unknown],
      [300, v(2)],
    ]);
    expect(pending.out).toEqual([
      [0, 'pending', null],
      [100, 'pending', null],
      [200, 'pending', null],
      [300, 'firing', 'firing'],
    ]);
    expect(pending.state).toMatchObject({ activeSince: 0, firingSince: s(300) });
    const firing = run([
      [0, v(2)],
      [300, v(2)],
      [400, unknown],
      [500, { kind: 'nodata' }],
    ]);
    expect(firing.out.slice(2)).toEqual([
      [400, 'firing', null],
      [500, 'nodata', 'resolved'],
    ]);
    expect(run([[0, unknown]], { ...rule, condition: 'absent', pendingSeconds: 0 }).out).toEqual([
      [0, 'ok', null],
    ]);
  });

  test('a value dancing around the threshold does not flap while firing', () => {
    const steps: Array<[number, Observation]> = [[0, v(2)]];
    for (let t = 10; t <= 1000; t += 10) steps.push([t, v(t % 20 === 0 ? 1 : 2)]);
    const { out } = run(steps, { ...rule, pendingSeconds: 0 });
    expect(out.filter(([, , n]) => n !== null).map(([, , n]) => n)).toEqual(['firing']);
  });

  test('pending clears without notification when the condition stops holding', () => {
    expect(
      run([
        [0, v(2)],
        [100, v(1)],
      ]).out,
    ).toEqual([
      [0, 'pending', null],
      [100, 'ok', null],
    ]);
  });

  test('pending period zero fires at once; repeat interval reminds', () => {
    const { out } = run(
      [
        [0, v(2)],
        [1800, v(2)],
        [3600, v(2)],
        [3700, v(2)],
      ],
      { ...rule, pendingSeconds: 0 },
    );
    expect(out.map(([, , n]) => n)).toEqual(['firing', null, 'repeat', null]);
  });

  test('missing data: nodata resolves a firing alert; alerting, ok and keep policies', () => {
    const fire: Array<[number, Observation]> = [
      [0, v(2)],
      [300, v(2)],
    ];
    expect(run([...fire, [310, { kind: 'nodata' }]], rule).out.at(-1)).toEqual([310, 'nodata', 'resolved']);
    expect(
      run([...fire, [310, { kind: 'nodata' }], [600, { kind: 'nodata' }]], { ...rule, nodataPolicy: 'keep' })
        .state.state,
    ).toBe('firing');
    expect(
      run(
        [
          [0, { kind: 'nodata' }],
          [300, { kind: 'nodata' }],
        ],
        { ...rule, nodataPolicy: 'alerting' },
      ).out.at(-1),
    ).toEqual([300, 'firing', 'firing']);
    expect(
      run([...fire, [310, { kind: 'nodata' }], [500, { kind: 'nodata' }]], {
        ...rule,
        nodataPolicy: 'ok',
      }).out.at(-1),
    ).toEqual([500, 'ok', 'resolved']);
    expect(run([[0, { kind: 'error', message: 'store down' }]]).state.state).toBe('error');
  });

  test('absent: no data is the condition', () => {
    const absent = { ...rule, condition: 'absent' as const, threshold: null, pendingSeconds: 30 };
    expect(
      run(
        [
          [0, { kind: 'nodata' }],
          [30, { kind: 'nodata' }],
          [40, v(1)],
          [200, v(1)],
        ],
        absent,
      ).out,
    ).toEqual([
      [0, 'pending', null],
      [30, 'firing', 'firing'],
      [40, 'firing', null],
      [200, 'ok', 'resolved'],
    ]);
  });

  test('below', () => {
    expect(run([[0, v(1)]], { ...rule, condition: 'below', pendingSeconds: 0 }).state.state).toBe('firing');
  });

  test('window functions', () => {
    const samples: Array<[number, number]> = [
      [s(0), 4],
      [s(10), 1],
      [s(20), 2],
      [s(30), 3],
    ];
    expect(windowValue(samples, 'mean', s(30), s(25))).toBe(2);
    expect(windowValue(samples, 'max', s(30), s(60))).toBe(4);
    expect(windowValue(samples, 'min', s(30), s(15))).toBe(2);
    expect(windowValue(samples, 'last', s(30), s(15))).toBe(3);
    expect(windowValue(samples, 'last', s(100), s(15))).toBeUndefined();
  });
});
