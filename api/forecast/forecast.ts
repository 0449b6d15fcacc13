/**
 * Capacity forecasting, pure: a robust linear trend (Theil–Sen: the median of the pairwise slopes) plus an
 * additive season (time of day: a few harmonics of the day fitted robustly to all the history; day of week: a
 * median per weekday once there are two weeks), fitted to a history and projected past `now` with a prediction
 * interval, and when that projection meets a capacity.
 *
 * Why harmonics and not a median per hour-of-day slot: each slot then rests on one point a day (30 in a month),
 * so a peak slot's level carried noise of about 0.23 σ, and where the trend is slow that moved "full in N days" by
 * days, depending on how the hour's samples happened to fall against the wall clock (3–5 days at some of 72
 * phases of a day). The harmonics use every point, are read at real times (a bucket's mean stands for its middle)
 * and the crossing is looked for every 5 minutes, so a peak between two buckets is not missed.
 *
 * The interval has two parts: the trend's own uncertainty — Sen's rank-based confidence interval of the slope,
 * pivoting at the centre of the history, so it widens with the horizon — and the spread of what the trend and
 * season do not explain (1.4826 × the median absolute deviation of the residuals, robust to spikes).
 * "Full in N days" is when the forecast first reaches the capacity (likely), when the interval's upper bound
 * does (low: the earliest) and when its lower bound does (high: the latest; null past the horizon).
 */

export const DAY_SECONDS = 86_400;
export const WEEK_SECONDS = 7 * DAY_SECONDS;
/** Fewer bucketed points, or a shorter span, is too little history to forecast from. */
export const MIN_HISTORY_POINTS = 24;
export const MIN_HISTORY_SECONDS = 3 * DAY_SECONDS;
/** The day-of-week profile needs two weeks of history; the time-of-day season two days. */
const WEEKLY_MIN_SECONDS = 2 * WEEK_SECONDS;
const DAILY_MIN_SECONDS = 2 * DAY_SECONDS;
/** The slope is the median of the pairwise slopes of at most this many points (means of neighbours). */
const MAX_SLOPE_POINTS = 360;
/** The daily season's shape: at most this many harmonics of the day (fewer when the step is coarse). */
const MAX_DAILY_HARMONICS = 4;
/** The crossing of the capacity is looked for at this resolution (or the step, if finer). */
const CROSSING_SECONDS = 300;
/** Normal quantiles for the interval's coverage. */
const Z = { 0.8: 1.2816, 0.9: 1.6449, 0.95: 1.96, 0.99: 2.5758 } as const;
export type Coverage = keyof typeof Z;

export interface ForecastInput {
  /** [time (s since the epoch), value]; any order, gaps allowed. */
  history: ReadonlyArray<readonly [number, number]>;
  /** What the value may not exceed; null: no crossing is looked for. */
  capacity: number | null;
  /** Seconds since the epoch: the forecast starts at the first step after it. */
  now: number;
  horizonSeconds: number;
  /** Bucket width of the history and of the forecast, and of the time-of-day profile's slots (≤ 1 day). */
  stepSeconds: number;
  /** Default 0.95. */
  coverage?: Coverage;
}

export interface ForecastPoint {
  time: number;
  value: number;
  lower: number;
  upper: number;
}

export interface FullIn {
  /** Days until the interval's upper bound reaches the capacity: the earliest. */
  low: number;
  /** Days until the forecast reaches it. */
  likely: number;
  /** Days until the lower bound reaches it: the latest; null when that is past the horizon. */
  high: number | null;
}

export type Seasonality = 'none' | 'daily' | 'daily+weekly';

export interface Forecast {
  insufficientHistory: boolean;
  /** Why there is no forecast (insufficientHistory). */
  reason: string | null;
  /** The history bucketed to the step: [time, mean]. */
  history: Array<[number, number]>;
  /** Per day, the trend's slope and Sen's interval of it. */
  slopePerDay: { value: number; lower: number; upper: number } | null;
  seasonality: Seasonality;
  /** Spread of the residuals (robust standard deviation). */
  residualSigma: number | null;
  coverage: Coverage;
  points: ForecastPoint[];
  /** null: the forecast does not reach the capacity within the horizon (or no capacity, or no forecast). */
  fullInDays: FullIn | null;
}

/** Fits and projects; never throws on odd input (non-finite values are left out). */
export function forecast(input: ForecastInput): Forecast {
  const step = input.stepSeconds;
  const coverage = input.coverage ?? 0.95;
  const history = bucket(input.history, step);
  const base: Forecast = {
    insufficientHistory: true,
    reason: null,
    history,
    slopePerDay: null,
    seasonality: 'none',
    residualSigma: null,
    coverage,
    points: [],
    fullInDays: null,
  };
  const span = history.length ? history[history.length - 1][0] - history[0][0] : 0;
  if (history.length < MIN_HISTORY_POINTS || span < MIN_HISTORY_SECONDS) {
    return {
      ...base,
      reason: `insufficient history: ${history.length} points over ${round(span / DAY_SECONDS, 2)} days; a forecast needs at least ${MIN_HISTORY_POINTS} over ${MIN_HISTORY_SECONDS / DAY_SECONDS} days`,
    };
  }

  const seasonality: Seasonality =
    span >= WEEKLY_MIN_SECONDS ? 'daily+weekly' : span >= DAILY_MIN_SECONDS ? 'daily' : 'none';
  // A bucket's mean stands for the middle of the time it covers (the newest bucket may end at `now`), so the
  // fit is made at those times and the projection is read at real times: never half a bucket off the season.
  const times = history.map(([t]) => Math.min(t + step / 2, (t + Math.max(t, input.now)) / 2));
  const values = history.map(([, v]) => v);
  const harmonics = Math.min(MAX_DAILY_HARMONICS, Math.floor((Math.round(DAY_SECONDS / step) - 1) / 2));
  const weekSlot = (t: number) => Math.floor(mod(t, WEEK_SECONDS) / DAY_SECONDS);
  let daily = new Array<number>(2 * harmonics).fill(0);
  let weekly = new Array<number>(7).fill(0);
  const dailyAt = (t: number) => (seasonality === 'none' ? 0 : fourier(daily, t));
  const weeklyAt = (t: number) => (seasonality === 'daily+weekly' ? weekly[weekSlot(t)] : 0);
  const season = (t: number) => dailyAt(t) + weeklyAt(t);

  // Trend on the deseasonalized values, each season on what the trend and the other season leave: three rounds.
  let trend = senSlope(times, values, Z[coverage]);
  for (let round = 0; round < 3; round++) {
    const detrended = values.map((v, i) => v - trend.at(times[i]));
    if (seasonality !== 'none' && harmonics > 0)
      daily = robustFourier(
        times,
        detrended.map((r, i) => r - weeklyAt(times[i])),
        harmonics,
      );
    if (seasonality === 'daily+weekly')
      weekly = profile(
        times,
        detrended.map((r, i) => r - dailyAt(times[i])),
        7,
        weekSlot,
      );
    trend = senSlope(
      times,
      values.map((v, i) => v - season(times[i])),
      Z[coverage],
    );
  }
  const residuals = values.map((v, i) => v - trend.at(times[i]) - season(times[i]));
  // The residuals' spread, widened by what fitting the level and the seasons from n points leaves uncertain.
  const fitted = 1 + (seasonality === 'none' ? 0 : 2 * harmonics) + (seasonality === 'daily+weekly' ? 7 : 0);
  const sigma = 1.4826 * mad(residuals) * Math.sqrt(1 + fitted / values.length);
  const z = Z[coverage];
  const at = (t: number): Omit<ForecastPoint, 'time'> => {
    const s = season(t);
    const dt = t - trend.pivot;
    return {
      value: trend.level + trend.slope * dt + s,
      lower: trend.level + trend.lower * dt + s - z * sigma,
      upper: trend.level + trend.upper * dt + s + z * sigma,
    };
  };

  const first = Math.floor(input.now / step) * step + step;
  const points: ForecastPoint[] = [];
  for (let t = first; t <= input.now + input.horizonSeconds; t += step)
    points.push({ time: t, ...at(t + step / 2) });
  return {
    ...base,
    insufficientHistory: false,
    slopePerDay: {
      value: trend.slope * DAY_SECONDS,
      lower: trend.lower * DAY_SECONDS,
      upper: trend.upper * DAY_SECONDS,
    },
    seasonality,
    residualSigma: sigma,
    points,
    fullInDays: fullIn(at, input, values[values.length - 1]),
  };
}

/**
 * When the forecast, its upper and its lower bound first reach the capacity (days from now), looked for every
 * CROSSING_SECONDS of the horizon: the season is a smooth curve, so a peak between two buckets is not missed.
 */
function fullIn(
  at: (t: number) => Omit<ForecastPoint, 'time'>,
  input: ForecastInput,
  latest: number,
): FullIn | null {
  const { capacity, now } = input;
  if (capacity === null) return null;
  if (latest >= capacity) return { low: 0, likely: 0, high: 0 };
  const found: Partial<Record<'value' | 'lower' | 'upper', number>> = {};
  const fine = Math.min(CROSSING_SECONDS, input.stepSeconds);
  for (let t = now + fine; t <= now + input.horizonSeconds && found.lower === undefined; t += fine) {
    const p = at(t);
    for (const key of ['value', 'lower', 'upper'] as const)
      if (found[key] === undefined && p[key] >= capacity) found[key] = round((t - now) / DAY_SECONDS, 2);
  }
  if (found.value === undefined) return null;
  return { low: found.upper ?? found.value, likely: found.value, high: found.lower ?? null };
}

interface Trend {
  slope: number;
  lower: number;
  upper: number;
  /** The line goes through (pivot, level): the centre of the history. */
  pivot: number;
  level: number;
  at(t: number): number;
}

/**
 * Theil–Sen: slope the median of the pairwise slopes, the line through the median of `y − slope·t`. The slope's
 * interval is Sen's: the pairwise slopes ranked (N ∓ z·√(n(n−1)(2n+5)/18)) / 2.
 */
function senSlope(times: number[], values: number[], z: number): Trend {
  const [t, y] = shrink(times, values, MAX_SLOPE_POINTS);
  const n = t.length;
  // A typed array: its sort is numeric and several times faster than an array's with a comparator.
  const all = new Float64Array((n * (n - 1)) / 2);
  let count = 0;
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) if (t[j] !== t[i]) all[count++] = (y[j] - y[i]) / (t[j] - t[i]);
  const slopes = all.subarray(0, count).sort();
  const slope = slopes.length ? medianSorted(slopes) : 0;
  const c = z * Math.sqrt((n * (n - 1) * (2 * n + 5)) / 18);
  const N = slopes.length;
  const lowRank = Math.max(0, Math.floor((N - c) / 2));
  const highRank = Math.min(N - 1, Math.ceil((N + c) / 2));
  const lower = N ? Math.min(slope, slopes[lowRank]) : 0;
  const upper = N ? Math.max(slope, slopes[highRank]) : 0;
  const pivot = (times[0] + times[times.length - 1]) / 2;
  const level = median(values.map((v, i) => v - slope * (times[i] - pivot)));
  return { slope, lower, upper, pivot, level, at: (time) => level + slope * (time - pivot) };
}

/** At most `max` points: means of runs of neighbours. */
function shrink(times: number[], values: number[], max: number): [number[], number[]] {
  if (times.length <= max) return [times, values];
  const per = Math.ceil(times.length / max);
  const t: number[] = [];
  const y: number[] = [];
  for (let i = 0; i < times.length; i += per) {
    const end = Math.min(times.length, i + per);
    let st = 0;
    let sy = 0;
    for (let j = i; j < end; j++) {
      st += times[j];
      sy += values[j];
    }
    t.push(st / (end - i));
    y.push(sy / (end - i));
  }
  return [t, y];
}

/** The daily season at t: Σ a_k cos(2πkt/day) + b_k sin(2πkt/day), coefficients [a_1, b_1, a_2, b_2, …]. */
function fourier(coefficients: number[], t: number): number {
  const w = (2 * Math.PI * mod(t, DAY_SECONDS)) / DAY_SECONDS;
  let sum = 0;
  for (let k = 0; k < coefficients.length / 2; k++)
    sum += coefficients[2 * k] * Math.cos((k + 1) * w) + coefficients[2 * k + 1] * Math.sin((k + 1) * w);
  return sum;
}

/**
 * The daily season as `harmonics` harmonics of the day, fitted to every point by least squares made robust by
 * Huber weights (a few reweighting rounds, the scale from the residuals' median absolute deviation): all the
 * history informs every time of day, where a median per hour-of-day slot rests on one point a day.
 */
function robustFourier(times: number[], values: number[], harmonics: number): number[] {
  const m = 2 * harmonics;
  const rows = times.map((t) => {
    const w = (2 * Math.PI * mod(t, DAY_SECONDS)) / DAY_SECONDS;
    const row: number[] = [];
    for (let k = 1; k <= harmonics; k++) row.push(Math.cos(k * w), Math.sin(k * w));
    return row;
  });
  const centre = median(values);
  const y = values.map((v) => v - centre);
  let weights = y.map(() => 1);
  let coefficients = new Array<number>(m).fill(0);
  for (let round = 0; round < 4; round++) {
    const a = Array.from({ length: m }, () => new Array<number>(m + 1).fill(0));
    rows.forEach((row, i) => {
      for (let r = 0; r < m; r++) {
        for (let c = 0; c < m; c++) a[r][c] += weights[i] * row[r] * row[c];
        a[r][m] += weights[i] * row[r] * y[i];
      }
    });
    const solved = solve(a);
    if (!solved) return coefficients;
    coefficients = solved;
    const residuals = rows.map((row, i) => y[i] - row.reduce((s, x, k) => s + x * solved[k], 0));
    const scale = 1.4826 * mad(residuals);
    if (!(scale > 0)) break;
    const c = 1.345 * scale;
    weights = residuals.map((r) => (Math.abs(r) <= c ? 1 : c / Math.abs(r)));
  }
  return coefficients;
}

/** Gauss–Jordan with partial pivoting on an augmented n × (n+1) matrix; null when singular. */
function solve(a: number[][]): number[] | null {
  const n = a.length;
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(a[r][col]) > Math.abs(a[pivot][col])) pivot = r;
    if (Math.abs(a[pivot][col]) < 1e-12) return null;
    [a[col], a[pivot]] = [a[pivot], a[col]];
    for (let r = 0; r < n; r++) {
      if (r === col) continue;
      const f = a[r][col] / a[col][col];
      for (let c = col; c <= n; c++) a[r][c] -= f * a[col][c];
    }
  }
  return a.map((row, i) => row[n] / row[i]);
}

/** Per slot the median of the values falling in it, centred so that the slots average zero. */
function profile(times: number[], values: number[], slots: number, slotOf: (t: number) => number): number[] {
  const bySlot: number[][] = Array.from({ length: slots }, () => []);
  times.forEach((t, i) => {
    bySlot[slotOf(t)].push(values[i]);
  });
  const raw = bySlot.map((vs) => (vs.length ? median(vs) : Number.NaN));
  const known = raw.filter((v) => !Number.isNaN(v));
  const centre = known.length ? known.reduce((a, b) => a + b, 0) / known.length : 0;
  return raw.map((v) => (Number.isNaN(v) ? 0 : v - centre));
}

/** Means per bucket of `step` seconds (labelled by the bucket's start), oldest first; non-finite values left out. */
export function bucket(
  points: ReadonlyArray<readonly [number, number]>,
  step: number,
): Array<[number, number]> {
  const sums = new Map<number, [number, number]>();
  for (const [t, v] of points) {
    if (!Number.isFinite(t) || !Number.isFinite(v)) continue;
    const b = Math.floor(t / step) * step;
    const s = sums.get(b);
    if (s) {
      s[0] += v;
      s[1]++;
    } else sums.set(b, [v, 1]);
  }
  return [...sums.entries()].sort(([a], [b]) => a - b).map(([t, [sum, n]]) => [t, sum / n]);
}

function median(values: number[]): number {
  return values.length ? medianSorted([...values].sort((a, b) => a - b)) : 0;
}

function medianSorted(sorted: ArrayLike<number>): number {
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function mad(values: number[]): number {
  const m = median(values);
  return median(values.map((v) => Math.abs(v - m)));
}

const mod = (a: number, m: number) => ((a % m) + m) % m;
const round = (v: number, digits: number) => Math.round(v * 10 ** digits) / 10 ** digits;
