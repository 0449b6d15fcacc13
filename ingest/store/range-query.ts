import type { Combine, LatestQuery, RangeQuery, Series, SeriesInfo, TagFilter } from './metrics-store.js';
import { PointRules, Refusal } from './point-rules.js';

/** How far before `from` a rate looks for the predecessor of a series' first point (at least a step). */
export const RATE_LOOKBACK_SECONDS = 300;
/** Guards the database against a graph asking for millions of buckets. */
export const MAX_BUCKETS = 100_000;

const AGGREGATES = new Set(['mean', 'max', 'min', 'sum', 'last']);
const COMBINES = new Set(['mean', 'max', 'min', 'sum']);

/** A query argument the stores cannot answer; the message names the field (the API answers 400). */
export class QueryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QueryError';
  }
}

/** A range query checked and in the stores' units: microseconds, names cleaned as written points are. */
export interface PlannedRange {
  measurement: string;
  field: string;
  tags: TagFilter;
  fromUs: number;
  toUs: number;
  stepUs: number;
  /** Where a rate starts looking for predecessors. */
  lookbackUs: number;
  agg: RangeQuery['agg'];
  rate: boolean;
  groupBy?: string[];
  combine: Combine;
}

const rules = new PointRules();

export function planRange(q: RangeQuery): PlannedRange {
  if (!(Number.isFinite(q.from) && Number.isFinite(q.to)))
    throw new QueryError('from and to must be numbers');
  if (!(q.to > q.from)) throw new QueryError('to must be after from');
  if (!(Number.isFinite(q.step) && q.step > 0))
    throw new QueryError('step must be a positive number of seconds');
  if (!AGGREGATES.has(q.agg)) throw new QueryError(`agg must be one of ${[...AGGREGATES].join(', ')}`);
  if (q.combine !== undefined && !COMBINES.has(q.combine))
    throw new QueryError(`combine must be one of ${[...COMBINES].join(', ')}`);
  const stepUs = Math.max(1, Math.round(q.step * 1e6));
  const fromUs = Math.floor(Math.round(q.from * 1e6) / stepUs) * stepUs;
  const toUs = Math.round(q.to * 1e6);
  if ((toUs - fromUs) / stepUs > MAX_BUCKETS)
    throw new QueryError(`step too small: more than ${MAX_BUCKETS} buckets`);
  return {
    measurement: cleanMeasurement(q.measurement),
    field: cleanField(q.field),
    tags: cleanTags(q.tags),
    fromUs,
    toUs,
    stepUs,
    lookbackUs: fromUs - Math.max(stepUs, RATE_LOOKBACK_SECONDS * 1e6),
    agg: q.agg,
    rate: q.rate === true,
    groupBy: q.groupBy ? [...new Set(q.groupBy.map(cleanTagName))] : undefined,
    combine: q.combine ?? (q.agg === 'last' ? 'sum' : q.agg),
  };
}

export function planLatest(q: LatestQuery): {
  measurement: string;
  field: string;
  tags: TagFilter;
  sinceUs?: number;
} {
  if (q.since !== undefined && !Number.isFinite(q.since)) throw new QueryError('since must be a number');
  return {
    measurement: cleanMeasurement(q.measurement),
    field: cleanField(q.field),
    tags: cleanTags(q.tags),
    sinceUs: q.since === undefined ? undefined : Math.round(q.since * 1e6),
  };
}

export function cleanMeasurement(name: string): string {
  const cleaned = typeof name === 'string' ? rules.measurement(name) : new Refusal('measurement is required');
  if (cleaned instanceof Refusal) throw new QueryError(`measurement: ${cleaned.reason}`);
  return cleaned;
}

function cleanField(name = 'value'): string {
  const cleaned = rules.fieldKey(name);
  if (cleaned instanceof Refusal) throw new QueryError(`field: ${cleaned.reason}`);
  return cleaned;
}

function cleanTagName(name: string): string {
  const pairs = rules.tagPairs({ [name]: 'x' });
  if (pairs instanceof Refusal) throw new QueryError(`tag ${JSON.stringify(name)}: ${pairs.reason}`);
  return pairs[0][0];
}

/** Filter values are cleaned like written tags, so a filter finds what a write of the same value stored. */
export function cleanTags(tags: TagFilter | undefined): TagFilter {
  const out: Record<string, string[]> = {};
  for (const [key, wanted] of Object.entries(tags ?? {})) {
    const values = typeof wanted === 'string' ? [wanted] : [...wanted];
    const name = cleanTagName(key);
    out[name] = values.map((v) => {
      if (typeof v !== 'string') throw new QueryError(`tag ${JSON.stringify(key)}: values must be strings`);
      if (v === '') return '';
      const pairs = rules.tagPairs({ [key]: v });
      if (pairs instanceof Refusal) throw new QueryError(`tag ${JSON.stringify(key)}: ${pairs.reason}`);
      return pairs[0]?.[1] ?? '';
    });
  }
  return out;
}

/** Tags without empty values, keys sorted: the shape both stores return. */
export function tidyTags(
  tags: Record<string, string | null | undefined> | undefined,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(tags ?? {}).sort()) {
    const value = tags![key];
    if (typeof value === 'string' && value !== '') out[key] = value;
  }
  return out;
}

function tagsKey(tags: Record<string, string>): string {
  return JSON.stringify(Object.entries(tags));
}

/** Series by tags, points by time: the order both stores answer in. */
export function sortSeries(series: Series[]): Series[] {
  for (const s of series) s.points.sort((a, b) => a[0] - b[0]);
  return series
    .map((s) => ({ s, key: tagsKey(s.tags) }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map(({ s }) => s);
}

export function sortSeriesInfo<T extends SeriesInfo>(list: T[]): T[] {
  return list
    .map((s) => ({ s, key: `${s.measurement}\u0000${tagsKey(s.tags)}` }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map(({ s }) => s);
}
