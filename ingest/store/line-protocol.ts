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

const NEWLINE = 0x0a;
const SPACE = 0x20;
const COMMA = 0x2c;
const EQUALS = 0x3d;
const MINUS = 0x2d;
const ZERO = 0x30;
/** The ASCII characters a plain tag has none of (PLAIN_TAG). */
const NOT_PLAIN = new Uint8Array(0x80);
for (const c of ',= \\\n\r') NOT_PLAIN[c.charCodeAt(0)] = 1;

/**
 * Line protocol bytes, written in place. The store fills one per batch and reuses it once the batch is
 * compressed: a batch of 5,000 lines then costs no strings on the JavaScript heap (building each line as a
 * string, joining them and converting the result to bytes made most of the ingest path's garbage).
 */
export class LineBuffer {
  bytes: Buffer;
  length = 0;

  constructor(capacity = 64 * 1024) {
    this.bytes = Buffer.allocUnsafe(capacity);
  }

  /** The bytes written (a view, valid until the buffer is written again). */
  view(): Buffer {
    return this.bytes.subarray(0, this.length);
  }

  byte(b: number): void {
    if (this.length === this.bytes.length) this.grow(1);
    this.bytes[this.length++] = b;
  }

  /**
   * Appends `s` as UTF-8. With `plainTag`, answers false instead (leaving a partial write for the caller to
   * roll back) when `s` has a character that a tag must not carry as is (see PLAIN_TAG).
   */
  text(s: string, plainTag = false): boolean {
    const n = s.length;
    if (this.length + n * 3 > this.bytes.length) this.grow(n * 3);
    const bytes = this.bytes;
    let at = this.length;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) {
        if (plainTag && !PLAIN_TAG.test(s)) return false;
        this.length = at + bytes.write(s.slice(i), at, 'utf8');
        return true;
      }
      if (plainTag && NOT_PLAIN[c] === 1) return false;
      bytes[at++] = c;
    }
    this.length = at;
    return true;
  }

  /** Appends a number as JavaScript prints it; integers (times, counters) without making a string. */
  number(x: number): void {
    if (!Number.isSafeInteger(x)) {
      this.text(String(x));
      return;
    }
    if (this.length + 17 > this.bytes.length) this.grow(17);
    if (x < 0) {
      this.bytes[this.length++] = MINUS;
      x = -x;
    }
    if (x < 1e8) {
      this.digits(x, 1);
      return;
    }
    // In two halves below 2^31, where division is integer arithmetic rather than fmod on doubles.
    let high = Math.floor(x / 1e8);
    let low = x - high * 1e8;
    if (low < 0) {
      high--;
      low += 1e8;
    }
    this.digits(high, 1);
    this.digits(low, 8);
  }

  /** Writes `v` (below 1e8) in decimal, with leading zeros up to `width` digits. */
  private digits(v: number, width: number): void {
    let n = 1;
    for (let p = 10; n < 8 && v >= p; p *= 10) n++;
    if (n < width) n = width;
    let at = this.length + n;
    this.length = at;
    for (let i = 0; i < n; i++) {
      const q = (v / 10) | 0;
      this.bytes[--at] = ZERO + v - q * 10;
      v = q;
    }
  }

  private grow(atLeast: number): void {
    const bigger = Buffer.allocUnsafe(Math.max(this.bytes.length * 2, this.length + atLeast));
    this.bytes.copy(bigger, 0, 0, this.length);
    this.bytes = bigger;
  }
}

/**
 * Builds InfluxDB line protocol (precision `u`, every field a float, as InfluxDB's collectd service
 * stores them). Escaped measurements and field keys are cached; tags take one pass, checked as they are
 * copied.
 */
export class LineEncoder {
  private readonly measurements = new Map<string, string | Refusal>();
  private readonly fieldKeys = new Map<string, string | Refusal>();
  private readonly scratch = new LineBuffer(1024);

  constructor(private readonly rules: PointRules) {}

  /** One point's line, or why it cannot be stored. */
  encode(point: Point): string | Refusal {
    this.scratch.length = 0;
    return this.write(point, this.scratch) ?? this.scratch.view().toString();
  }

  /**
   * Appends the point's line to `out`, after a newline if `out` holds lines already; or leaves `out` as it
   * was and answers why the point cannot be stored.
   */
  write(point: Point, out: LineBuffer): Refusal | undefined {
    const start = out.length;
    try {
      const refusal = this.line(point, out, start > 0);
      if (refusal) out.length = start;
      return refusal;
    } catch (err) {
      out.length = start;
      throw err;
    }
  }

  private line(point: Point, out: LineBuffer, separate: boolean): Refusal | undefined {
    const measurement = this.measurement(point.measurement);
    if (measurement instanceof Refusal) return measurement;
    if (separate) out.byte(NEWLINE);
    out.text(measurement);
    const tags = this.tags(point.tags, out);
    if (tags) return tags;
    if (typeof point.time !== 'number' || !Number.isFinite(point.time)) return BAD_TIME;
    let first = true;
    for (const key in point.fields) {
      const value = point.fields[key];
      if (typeof value !== 'number' || !Number.isFinite(value)) continue;
      const name = this.fieldKey(key);
      if (name instanceof Refusal) return name;
      out.byte(first ? SPACE : COMMA);
      out.text(name);
      out.byte(EQUALS);
      out.number(value);
      first = false;
    }
    if (first) return NO_FIELDS;
    out.byte(SPACE);
    out.number(Math.round(point.time * 1e6));
    return undefined;
  }

  /** `,k=v...` in one pass when keys come sorted and plain (as ingest builds them), else the full rules. */
  private tags(tags: Record<string, string>, out: LineBuffer): Refusal | undefined {
    if (tags === null || typeof tags !== 'object') return this.rules.tagPairs(tags) as Refusal;
    const start = out.length;
    let previous = '';
    for (const key in tags) {
      const value = tags[key];
      if (value === '') continue;
      if (typeof value !== 'string' || key <= previous || key === 'time')
        return this.ruledTags(tags, out, start);
      out.byte(COMMA);
      if (!out.text(key, true)) return this.ruledTags(tags, out, start);
      out.byte(EQUALS);
      if (!out.text(value, true)) return this.ruledTags(tags, out, start);
      previous = key;
    }
    return undefined;
  }

  private ruledTags(tags: Record<string, string>, out: LineBuffer, start: number): Refusal | undefined {
    out.length = start;
    const pairs = this.rules.tagPairs(tags);
    if (pairs instanceof Refusal) return pairs;
    for (const [key, value] of pairs) {
      out.byte(COMMA);
      out.text(escapeTag(key));
      out.byte(EQUALS);
      out.text(escapeTag(value));
    }
    return undefined;
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
