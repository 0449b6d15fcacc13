import { RE2JS } from 're2js';
import type { SilenceRow } from './alerts.repository.js';

export type MatchOp = '=' | '!=' | '=~' | '!~';
export interface Matcher {
  name: string;
  value: string;
  op: MatchOp;
}

/**
 * A matcher's regular expression, compiled by RE2 (re2js): matching takes time linear in the label's length
 * whatever the pattern, so a user's pattern cannot stall the alert list or the dispatcher (ReDoS). RE2 has no
 * backreferences or lookaround; such patterns are refused when the silence is made (matchersProblem).
 * Anchored, as Alertmanager's: `host=~"web.*"` matches web1, not aweb1.
 */
function compileRegex(pattern: string): RE2JS {
  let re = compiled.get(pattern);
  if (!re) {
    re = RE2JS.compile(`^(?:${pattern})$`);
    if (compiled.size >= 1000) compiled.delete(compiled.keys().next().value as string);
    compiled.set(pattern, re);
  }
  return re;
}
const compiled = new Map<string, RE2JS>();

export function compileMatcher(m: Matcher): (labels: Record<string, string>) => boolean {
  const value = (labels: Record<string, string>) => labels[m.name] ?? '';
  switch (m.op) {
    case '=':
      return (l) => value(l) === m.value;
    case '!=':
      return (l) => value(l) !== m.value;
    default: {
      let re: RE2JS;
      try {
        re = compileRegex(m.value);
      } catch {
        return () => false; // stored before patterns were checked with RE2: it silences nothing
      }
      return m.op === '=~' ? (l) => re.matches(value(l)) : (l) => !re.matches(value(l));
    }
  }
}

/** Why a matcher list is unusable (naming the field), or null. */
export function matchersProblem(matchers: Matcher[]): string | null {
  if (!matchers.length) return 'matchers: at least one is needed';
  for (const [i, m] of matchers.entries()) {
    if (m.op === '=~' || m.op === '!~') {
      try {
        compileRegex(m.value);
      } catch (err) {
        return `matchers.${i}.value: not a regular expression RE2 accepts (no backreferences or lookaround): ${(err as Error).message}`;
      }
    }
  }
  return null;
}

/**
 * Whether a silence holds an alert: every matcher matches its labels and, for a pool's silence, the alert is in
 * that pool or below it (`poolChain`: the alert's pool and its ancestors).
 */
export function silences(
  silence: Pick<SilenceRow, 'pool_id' | 'matchers'>,
  labels: Record<string, string>,
  poolChain: number[],
): boolean {
  if (silence.pool_id !== null && !poolChain.includes(silence.pool_id)) return false;
  return silence.matchers.every((m) => compileMatcher(m)(labels));
}
