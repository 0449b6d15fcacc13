import type { Point } from '../types.js';
import { BAD_TIME, NO_FIELDS, PLAIN_TAG, type PointRules, Refusal } from './point-rules.js';

const MEASUREMENT_SPECIAL = /[, ]/g;
const TAG_SPECIAL = /[, =]/g;

export function escapeMeasurement(name: string): string {
  return name.replace(MEASUREMENT_SPECIAL, '\\$&');
}

/** Tag keys, tag values and field keys escape the same characters. */
export function escapeTag(name: string): string {
  return name.replace(TAG_SPECIAL, '\\$&');
}

/**
 * Builds InfluxDB line protocol (precision `u`, every field a float, as InfluxDB's collectd service
 * stores them). Escaped measurements and field keys are cached; tags take one pass.
 */
export class LineEncoder {
  private readonly measurements = new Map<string, string | Refusal>();
  private readonly fieldKeys = new Map<string, string | Refusal>();

  constructor(private readonly rules: PointRules) {}

  encode(point: Point): string | Refusal {
    const measurement = this.measurement(point.measurement);
    if (measurement instanceof Refusal) return measurement;
    const tags = this.tagLine(point.tags);
    if (tags instanceof Refusal) return tags;
    if (typeof point.time !== 'number' || !Number.isFinite(point.time)) return BAD_TIME;
    let fields = '';
    for (const key in point.fields) {
      const value = point.fields[key];
      if (typeof value !== 'number' || !Number.isFinite(value)) continue;
      const name = this.fieldKey(key);
      if (name instanceof Refusal) return name;
      fields += fields === '' ? `${name}=${value}` : `,${name}=${value}`;
    }
    if (fields === '') return NO_FIELDS;
    return `${measurement}${tags} ${fields} ${Math.round(point.time * 1e6)}`;
  }

  /** `,k=v...` in one pass when keys come sorted and plain (as ingest builds them), else the full rules. */
  private tagLine(tags: Record<string, string>): string | Refusal {
    if (tags === null || typeof tags !== 'object') return this.rules.tagPairs(tags) as Refusal;
    let line = '';
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
        const pairs = this.rules.tagPairs(tags);
        if (pairs instanceof Refusal) return pairs;
        return pairs.map(([k, v]) => `,${escapeTag(k)}=${escapeTag(v)}`).join('');
      }
      previous = key;
      line += `,${key}=${value}`;
    }
    return line;
  }

  private measurement(raw: string): string | Refusal {
    let escaped = this.measurements.get(raw);
    if (escaped === undefined) {
      const name = this.rules.measurement(raw);
      escaped = name instanceof Refusal ? name : escapeMeasurement(name);
      if (this.measurements.size >= 100_000) this.measurements.clear();
      this.measurements.set(raw, escaped);
    }
    return escaped;
  }

  private fieldKey(raw: string): string | Refusal {
    let escaped = this.fieldKeys.get(raw);
    if (escaped === undefined) {
      const name = this.rules.fieldKey(raw);
      escaped = name instanceof Refusal ? name : escapeTag(name);
      if (this.fieldKeys.size >= 100_000) this.fieldKeys.clear();
      this.fieldKeys.set(raw, escaped);
    }
    return escaped;
  }
}

/** Splits a series key as `SHOW SERIES` prints it (`m,k=v,...`, escaped) into measurement and tags. */
export function parseSeriesKey(key: string): { measurement: string; tags: Record<string, string> } {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < key.length; i++) {
    const c = key[i];
    if (c === '\\' && i + 1 < key.length && ',= "'.includes(key[i + 1])) {
      current += c + key[i + 1];
      i++;
    } else if (c === ',') {
      parts.push(current);
      current = '';
    } else current += c;
  }
  parts.push(current);
  const tags: Record<string, string> = {};
  for (const pair of parts.slice(1)) {
    const eq = findUnescaped(pair, '=');
    if (eq < 0) continue;
    const value = unescapeName(pair.slice(eq + 1));
    if (value !== '') tags[unescapeName(pair.slice(0, eq))] = value;
  }
  return { measurement: unescapeName(parts[0]), tags };
}

function findUnescaped(s: string, ch: string): number {
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\') i++;
    else if (s[i] === ch) return i;
  }
  return -1;
}

function unescapeName(s: string): string {
  return s.includes('\\') ? s.replace(/\\([,= "])/g, '$1') : s;
}
