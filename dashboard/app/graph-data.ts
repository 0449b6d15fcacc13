/**
 * What a graph draws, as pure functions (no DOM): the rows of the vega view and the ticks of its time axis.
 * See docs/graphs.md for the choices.
 */
import { scaleFor } from './format.js';
import type { Graph } from './types.js';

/** One drawn point: `value` null breaks the line (a gap). */
export interface Row {
  t: number;
  line: string;
  kind: string;
  key: string;
  value: number | null;
}

/** Buckets in the rolling average and peak. */
export const ROLLING = 6;

/**
 * The rows of a graph: every line's average and peak (and rolling ones if asked), in the unit chosen from the
 * largest value drawn. Buckets from `partialFrom` on are left out (still filling: drawn, they would show a drop
 * at "now" that is not there); a point of nulls from the API stays, as a gap.
 */
export function graphRows(graph: Graph, rolling: boolean): { rows: Row[]; unit: string; partial: boolean } {
  const cut = graph.partialFrom ?? Number.POSITIVE_INFINITY;
  let partial = false;
  const series = graph.series.map((s) => ({
    name: s.name,
    points: s.points.filter(([t]) => {
      const keep = t < cut;
      partial ||= !keep;
      return keep;
    }),
  }));
  let max = 0;
  for (const s of series) for (const [, avg, peak] of s.points) max = Math.max(max, avg ?? 0, peak ?? 0);
  const scale = scaleFor(graph.unit, max);
  const rows: Row[] = [];
  for (const s of series) {
    const add = (kind: string, values: Array<[number, number | null]>) => {
      for (const [t, v] of values)
        rows.push({
          t: t * 1000,
          line: s.name,
          kind,
          key: `${s.name} ${kind}`,
          value: v === null ? null : v / scale.divisor,
        });
    };
    const avg = s.points.map(([t, a]) => [t, a] as [number, number | null]);
    const peak = s.points.map(([t, , p]) => [t, p] as [number, number | null]);
    add('average', avg);
    add('peak', peak);
    if (rolling) {
      add(
        'rolling average',
        rollingOf(avg, (v) => v.reduce((a, b) => a + b, 0) / v.length),
      );
      add(
        'rolling peak',
        rollingOf(peak, (v) => Math.max(...v)),
      );
    }
  }
  return { rows, unit: scale.label, partial };
}

function rollingOf(
  values: Array<[number, number | null]>,
  f: (window: number[]) => number,
): Array<[number, number | null]> {
  return values.map(([t, v], i) => {
    if (v === null) return [t, null];
    const window = values
      .slice(Math.max(0, i - ROLLING + 1), i + 1)
      .map(([, w]) => w)
      .filter((w): w is number => w !== null);
    return [t, f(window)];
  });
}

const MINUTE = 60;
const HOUR = 3600;
const DAY = 86_400;
/** Tick spacings a person reads easily, in seconds. */
const TICK_STEPS = [
  1,
  2,
  5,
  10,
  15,
  30,
  MINUTE,
  2 * MINUTE,
  5 * MINUTE,
  10 * MINUTE,
  15 * MINUTE,
  30 * MINUTE,
  HOUR,
  2 * HOUR,
  3 * HOUR,
  6 * HOUR,
  12 * HOUR,
  DAY,
  2 * DAY,
  7 * DAY,
  14 * DAY,
];
/** Room a time label needs, in pixels. */
const LABEL_PX = 90;

/**
 * Ticks of a time axis over [fromMs, toMs] drawn `widthPx` wide: a readable spacing (seconds or minutes when
 * the range is minutes, hours over a day, days over weeks) with at most one label per LABEL_PX, and a format as fine as
 * the spacing, so two neighbouring labels always differ. Days start at local midnight.
 */
export function timeTicks(
  fromMs: number,
  toMs: number,
  widthPx: number,
): { values: number[]; format: string } {
  const span = Math.max(1, (toMs - fromMs) / 1000);
  const most = Math.max(2, Math.floor(widthPx / LABEL_PX));
  const step = TICK_STEPS.find((s) => span / s <= most) ?? Math.ceil(span / most / (7 * DAY)) * 7 * DAY;
  const values: number[] = [];
  if (step >= DAY) {
    const days = Math.round(step / DAY);
    const d = new Date(fromMs);
    d.setHours(0, 0, 0, 0);
    if (d.getTime() < fromMs) d.setDate(d.getDate() + 1);
    for (; d.getTime() <= toMs; d.setDate(d.getDate() + days)) values.push(d.getTime());
  } else {
    // Aligned to the epoch: whole minutes and hours (and half hours) of every time zone's clock.
    for (let t = Math.ceil(fromMs / 1000 / step) * step; t * 1000 <= toMs; t += step) values.push(t * 1000);
  }
  // Seconds shown on ranges of minutes (where "when" is asked to the second), and wherever ticks are closer.
  const seconds = step < MINUTE || span <= 15 * MINUTE;
  const format = seconds ? '%H:%M:%S' : step < DAY ? (span > DAY ? '%a %H:%M' : '%H:%M') : '%b %d';
  return { values, format };
}
