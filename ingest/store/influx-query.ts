import type { TagFilter } from './metrics-store.js';
import type { PlannedRange } from './range-query.js';

export function quoteIdent(name: string): string {
  return `"${name.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export function quoteString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** InfluxQL takes integer times as nanoseconds. */
function ns(us: number): string {
  return `${BigInt(us) * 1000n}`;
}

/** `"k" = 'v'` per value, OR-ed per key, AND-ed across keys; `''` matches series without the tag. */
export function tagConditions(tags: TagFilter): string[] {
  return Object.entries(tags).map(([key, wanted]) => {
    const values = typeof wanted === 'string' ? [wanted] : wanted;
    if (values.length === 0) return 'false';
    const one = values.map((v) => `${quoteIdent(key)} = ${quoteString(v)}`);
    return one.length === 1 ? one[0] : `(${one.join(' OR ')})`;
  });
}

function where(conditions: string[]): string {
  return conditions.length ? ` WHERE ${conditions.join(' AND ')}` : '';
}

const FUNCTIONS = { mean: 'mean', max: 'max', min: 'min', sum: 'sum', last: 'last' } as const;

/**
 * One statement for a planned range (see RangeQuery): buckets from GROUP BY time() per series
 * (`GROUP BY *`), and `groupBy` combines those per-series buckets in an outer query.
 *
 * Rates come from `non_negative_derivative(…, 1s)` over raw points from the lookback on. InfluxDB
 * imposes an outer query's time range on its subqueries, which would cut the lookback off, so the
 * outer levels of a rate query carry no time condition and span the lookback too: the caller drops
 * the buckets before `from` (whole buckets, as `from` is aligned to one).
 */
export function rangeStatement(p: PlannedRange): string {
  const measurement = quoteIdent(p.measurement);
  const bucket = `time(${p.stepUs}u)`;
  let perSeries: string;
  let outerWhere: string;
  if (p.rate) {
    const window = [...tagConditions(p.tags), `time >= ${ns(p.lookbackUs)}`, `time < ${ns(p.toUs)}`];
    const rates = `SELECT non_negative_derivative(${quoteIdent(p.field)}, 1s) AS "r" FROM ${measurement}${where(window)} GROUP BY *`;
    perSeries = `SELECT ${FUNCTIONS[p.agg]}("r") AS "v" FROM (${rates}) GROUP BY ${bucket}, * fill(none)`;
    outerWhere = '';
  } else {
    const inRange = [`time >= ${ns(p.fromUs)}`, `time < ${ns(p.toUs)}`];
    perSeries = `SELECT ${FUNCTIONS[p.agg]}(${quoteIdent(p.field)}) AS "v" FROM ${measurement}${where([...tagConditions(p.tags), ...inRange])} GROUP BY ${bucket}, * fill(none)`;
    outerWhere = where(inRange);
  }
  if (!p.groupBy) return perSeries;
  const by = [bucket, ...p.groupBy.map(quoteIdent)].join(', ');
  return `SELECT ${FUNCTIONS[p.combine]}("v") AS "v" FROM (${perSeries})${outerWhere} GROUP BY ${by} fill(none)`;
}

export function latestStatement(p: {
  measurement: string;
  field: string;
  tags: TagFilter;
  sinceUs?: number;
}): string {
  const conditions = tagConditions(p.tags);
  if (p.sinceUs !== undefined) conditions.push(`time >= ${ns(p.sinceUs)}`);
  return `SELECT last(${quoteIdent(p.field)}) AS "v" FROM ${quoteIdent(p.measurement)}${where(conditions)} GROUP BY *`;
}

export function seriesStatement(p: { measurement?: string; tags: TagFilter }): string {
  const from = p.measurement === undefined ? '' : ` FROM ${quoteIdent(p.measurement)}`;
  return `SHOW SERIES${from}${where(tagConditions(p.tags))}`;
}
