/** One sample of a Prometheus text exposition. */
export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface PromExposition {
  samples: PromSample[];
  types: Map<string, string>;
  help: Map<string, string>;
  /** Samples of `name` whose labels include `match`. */
  find(name: string, match?: Record<string, string>): PromSample[];
  /** The value of the one sample of `name` with labels including `match`; throws unless exactly one. */
  value(name: string, match?: Record<string, string>): number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

/**
 * A strict parser of the text format 0.0.4, for tests: every sample's metric has a TYPE line before it,
 * label values use only the three escapes (`\\`, `\"`, `\n`), no series appears twice; anything else throws.
 */
export function parsePrometheusText(text: string): PromExposition {
  if (text !== '' && !text.endsWith('\n')) throw new Error('exposition does not end with a newline');
  const samples: PromSample[] = [];
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const seen = new Set<string>();
  const lines = text.split('\n').slice(0, -1);
  for (const [i, line] of lines.entries()) {
    const where = `line ${i + 1}: ${JSON.stringify(line)}`;
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) continue; // a comment
      const [, kind, name, rest] = m;
      if (!NAME.test(name)) throw new Error(`bad metric name, ${where}`);
      if (kind === 'TYPE') {
        if (!TYPES.has(rest)) throw new Error(`bad type, ${where}`);
        if (types.has(name)) throw new Error(`second TYPE, ${where}`);
        types.set(name, rest);
      } else help.set(name, rest.replace(/\\n/g, '\n').replace(/\\\\/g, '\\'));
      continue;
    }
    const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
    if (!nameMatch) throw new Error(`no metric name, ${where}`);
    const name = nameMatch[0];
    let pos = name.length;
    const labels: Record<string, string> = {};
    if (line[pos] === '{') {
      pos++;
      while (line[pos] !== '}') {
        const eq = line.indexOf('=', pos);
        if (eq < 0) throw new Error(`label without "=", ${where}`);
        const label = line.slice(pos, eq);
        if (!LABEL_NAME.test(label)) throw new Error(`bad label name ${label}, ${where}`);
        if (label in labels) throw new Error(`label ${label} twice, ${where}`);
        if (line[eq + 1] !== '"') throw new Error(`unquoted label value, ${where}`);
        let value = '';
        let j = eq + 2;
        for (;;) {
          const c = line[j];
          if (c === undefined) throw new Error(`unterminated label value, ${where}`);
          if (c === '"') break;
          if (c === '\\') {
            const next = line[j + 1];
            if (next === 'n') value += '\n';
            else if (next === '\\' || next === '"') value += next;
            else throw new Error(`bad escape \\${next}, ${where}`);
            j += 2;
          } else {
            value += c;
            j++;
          }
        }
        labels[label] = value;
        pos = j + 1;
        if (line[pos] === ',') pos++;
        else if (line[pos] !== '}') throw new Error(`expected "," or "}", ${where}`);
      }
      pos++;
    }
    const rest = line.slice(pos);
    const m = /^ (\S+)( -?\d+)?$/.exec(rest);
    if (!m) throw new Error(`bad value part, ${where}`);
    const value =
      m[1] === '+Inf' ? Infinity : m[1] === '-Inf' ? -Infinity : m[1] === 'NaN' ? NaN : Number(m[1]);
    if (Number.isNaN(value) && m[1] !== 'NaN') throw new Error(`bad value, ${where}`);
    const family = types.has(name) ? name : name.replace(/_(sum|count|bucket|total)$/, '');
    if (!types.has(family)) throw new Error(`sample before its TYPE, ${where}`);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seen.has(key)) throw new Error(`series twice, ${where}`);
    seen.add(key);
    samples.push({ name, labels, value });
  }
  const find = (name: string, match: Record<string, string> = {}) =>
    samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
  return {
    samples,
    types,
    help,
    find,
    value(name, match) {
      const found = find(name, match);
      if (found.length !== 1)
        throw new Error(`${found.length} samples of ${name} ${JSON.stringify(match ?? {})}, not 1`);
      return found[0].value;
    },
  };
}
