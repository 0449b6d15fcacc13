import type { Point } from '../types.js';

/** Why a point (or part of it) cannot be stored; counted as a drop and named in the log line. */
export class Refusal {
  constructor(readonly reason: string) {}
}

// InfluxDB 1.x line protocol cannot carry a backslash right before a character it escapes, nor at the
// end of a name (the backslash would escape the separator that follows, and `\\` is not an escape there);
// measurement names and field keys also unescape `\"`. Such backslashes are removed — on both stores, so
// that they store the same names. Newlines cannot be carried at all: such points are refused.
const LOSSY_IN_TAG = /\\+(?=[, =]|$)/g;
const LOSSY_IN_NAME = /\\+(?=[, ="]|$)/g;
const NEEDS_WORK = /[\\\n\r]/;
const NEWLINE = /[\n\r]/;
/** A tag key or value with none of these needs neither cleaning nor escaping. */
export const PLAIN_TAG = /^[^\\\n\r, =]+$/;
const CACHE_LIMIT = 100_000;

function clean(name: string, lossy: RegExp): string | Refusal {
  if (!NEEDS_WORK.test(name)) return name;
  if (NEWLINE.test(name)) return new Refusal(`newline in name ${JSON.stringify(name)}`);
  return name.replace(lossy, '');
}

/**
 * The rules every point passes on its way into either store. Names are cached per string (there are
 * few measurements and field keys); tag sets are not cached, as producers build a fresh tags object per
 * value list: `tagPairs` is a single pass for the usual case (keys already sorted, plain characters).
 */
export class PointRules {
  private readonly measurements = new Map<string, string | Refusal>();
  private readonly fieldKeys = new Map<string, string | Refusal>();

  measurement(name: string): string | Refusal {
    let cleaned = this.measurements.get(name);
    if (cleaned === undefined) {
      cleaned = clean(name, LOSSY_IN_NAME);
      if (cleaned === '') cleaned = new Refusal('empty measurement name');
      else if (typeof cleaned === 'string' && cleaned.startsWith('#'))
        cleaned = new Refusal(`measurement ${JSON.stringify(name)} would read as a line-protocol comment`);
      remember(this.measurements, name, cleaned);
    }
    return cleaned;
  }

  fieldKey(name: string): string | Refusal {
    let cleaned = this.fieldKeys.get(name);
    if (cleaned === undefined) {
      cleaned = clean(name, LOSSY_IN_NAME);
      if (cleaned === '') cleaned = new Refusal('empty field name');
      else if (cleaned === 'time') cleaned = new Refusal('field named "time"');
      remember(this.fieldKeys, name, cleaned);
    }
    return cleaned;
  }

  /** The tags as stored: empty values left out, names cleaned, sorted by key. */
  tagPairs(tags: Record<string, string>): Array<[string, string]> | Refusal {
    if (tags === null || typeof tags !== 'object') return new Refusal('tags is not an object');
    const pairs: Array<[string, string]> = [];
    let previous = '';
    for (const key in tags) {
      const value = tags[key];
      if (value === '') continue;
      if (
        typeof value !== 'string' ||
        key <= previous ||
        key === 'time' ||
        !PLAIN_TAG.test(key) ||
        !PLAIN_TAG.test(value)
      ) {
        return slowTagPairs(tags);
      }
      previous = key;
      pairs.push([key, value]);
    }
    return pairs;
  }

  /** The finite fields of a point under their cleaned names, or why there are none usable. */
  fields(point: Point): Array<[string, number]> | Refusal {
    const out: Array<[string, number]> = [];
    for (const key in point.fields) {
      const value = point.fields[key];
      if (typeof value !== 'number' || !Number.isFinite(value)) continue;
      const name = this.fieldKey(key);
      if (name instanceof Refusal) return name;
      out.push([name, value]);
    }
    return out.length > 0 ? out : NO_FIELDS;
  }
}

export const NO_FIELDS = new Refusal('no finite field value');
export const BAD_TIME = new Refusal('time is not a finite number');

function slowTagPairs(tags: Record<string, string>): Array<[string, string]> | Refusal {
  const byKey = new Map<string, string>();
  for (const rawKey of Object.keys(tags)) {
    const rawValue = tags[rawKey];
    if (typeof rawValue !== 'string') return new Refusal(`tag ${JSON.stringify(rawKey)} is not a string`);
    if (rawValue === '') continue;
    const key = clean(rawKey, LOSSY_IN_TAG);
    if (key instanceof Refusal) return key;
    if (key === '') return new Refusal('empty tag key');
    if (key === 'time') return new Refusal('tag named "time"');
    const value = clean(rawValue, LOSSY_IN_TAG);
    if (value instanceof Refusal) return value;
    if (value !== '') byKey.set(key, value);
  }
  return [...byKey].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

function remember<V>(cache: Map<string, V>, key: string, value: V): void {
  // Names come from the network: a flood of distinct ones must not grow the cache without end.
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(key, value);
}
