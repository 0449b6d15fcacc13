import { describe, expect, test } from 'vitest';
import { graphRows, timeTicks } from './app/graph-data.js';
import type { Graph } from './app/types.js';

const T0 = 1_796_256_000; // a fixed instant (Thu 3 Dec 2026 00:00 UTC): nothing here depends on the date

function graph(points: Array<[number, number | null, number | null]>, extra: Partial<Graph> = {}): Graph {
  return {
    entity: 'host:1',
    metric: 'network',
    title: 'Network',
    unit: 'bytes/s',
    from: T0,
    to: T0 + 600,
    step: 10,
    source: 'raw',
    series: [{ name: 'rx', points }],
    ...extra,
  };
}

describe('graph rows', () => {
  test('the bucket still filling is left out, and does not choose the unit', () => {
    const points: Array<[number, number | null, number | null]> = [
      [T0, 3 * 1024, 4 * 1024],
      [T0 + 10, 3 * 1024, 4 * 1024],
      // Still filling: half the hosts reported, or a reset's spike: neither may be drawn.
      [T0 + 20, 900 * 1024 * 1024, 900 * 1024 * 1024],
    ];
    const { rows, unit, partial } = graphRows(graph(points, { partialFrom: T0 + 20 }), false);
    expect(partial).toBe(true);
    expect(unit).toBe('KiB/s');
    expect(rows.filter((r) => r.kind === 'average').map((r) => [r.t, r.value])).toEqual([
      [T0 * 1000, 3],
      [(T0 + 10) * 1000, 3],
    ]);
  });

  test('the unit follows the data: MiB/s for MiB/s figures, KiB/s for KiB/s ones', () => {
    const mib = graphRows(graph([[T0, 5 * 1024 * 1024, 6 * 1024 * 1024]]), false);
    expect(mib.unit).toBe('MiB/s');
    expect(mib.rows.map((r) => r.value)).toEqual([5, 6]);
    expect(graphRows(graph([[T0, 5 * 1024, 6 * 1024]]), false).unit).toBe('KiB/s');
  });

  test('a point of nulls stays a gap, also in the rolling lines', () => {
    const { rows } = graphRows(
      graph([
        [T0, 10, 10],
        [T0 + 10, null, null],
        [T0 + 40, 10, 10],
      ]),
      true,
    );
    for (const kind of ['average', 'peak', 'rolling average', 'rolling peak'])
      expect(rows.filter((r) => r.kind === kind).map((r) => r.value)).toEqual([10, null, 10]);
  });
});

describe('time axis ticks', () => {
  const distinct = (values: Array<number | string>) => new Set(values).size === values.length;

  test('minutes: labels with seconds, ticks seconds apart where there is room', () => {
    // Five minutes at 600 px: the VM graph that read "23:30 23:30 23:31 23:31 …".
    const { values, format } = timeTicks(T0 * 1000, (T0 + 300) * 1000, 600);
    expect(format).toBe('%H:%M:%S');
    expect(values.length).toBeGreaterThanOrEqual(2);
    expect(values.length).toBeLessThanOrEqual(6);
    expect(distinct(values)).toBe(true);
    // Two minutes on a wide graph: ticks seconds apart.
    const wide = timeTicks(T0 * 1000, (T0 + 120) * 1000, 1200);
    expect(wide.format).toBe('%H:%M:%S');
    expect(wide.values[1] - wide.values[0]).toBeLessThan(60_000);
    expect((wide.values[1] - wide.values[0]) % 1000).toBe(0);
  });

  test('an hour: whole minutes, hours and minutes shown, no two ticks in one minute', () => {
    const { values, format } = timeTicks(T0 * 1000 + 7_000, (T0 + 3600) * 1000 + 7_000, 1000);
    expect(format).toBe('%H:%M');
    expect(values.every((v) => v % 60_000 === 0)).toBe(true);
    expect(distinct(values.map((v) => Math.floor(v / 60_000)))).toBe(true);
    expect(values[0]).toBeGreaterThanOrEqual(T0 * 1000 + 7_000);
  });

  test('days: the weekday with the time over two days, dates over weeks, at most one label per 90 px', () => {
    expect(timeTicks(T0 * 1000, (T0 + 2 * 86_400) * 1000, 1000).format).toBe('%a %H:%M');
    const month = timeTicks(T0 * 1000, (T0 + 30 * 86_400) * 1000, 600);
    expect(month.format).toBe('%b %d');
    expect(month.values.length).toBeLessThanOrEqual(600 / 90);
    for (const v of month.values) expect(new Date(v).getHours()).toBe(0);
    expect(distinct(month.values.map((v) => new Date(v).toDateString()))).toBe(true);
  });
});
