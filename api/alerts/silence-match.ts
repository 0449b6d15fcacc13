import type { SilenceRow } from './alerts.repository.js';

export type MatchOp = '=' | '!=' | '=~' | '!~';
export interface Matcher {
  name: string;
  value: string;
  op: MatchOp;
}

/** Regex matchers are anchored, as Alertmanager's: `host=~"web.*"` matches web1, not aweb1. */
export function compileMatcher(m: Matcher): (labels: Record<string, string>) => boolean {
  const value = (labels: Record<string, string>) => labels[m.name] ?? '';
  switch (m.op) {
    case '=':
      return (l) => value(l) === m.value;
    case '!=':
      return (l) => value(l) !== m.value;
    default: {
      const re = new RegExp(`^(?:${m.value})$`);
      return m.op === '=~' ? (l) => re.test(value(l)) : (l) => !re.test(value(l));
    }
  }
}

/** Why a matcher list is unusable (naming the field), or null. */
export function matchersProblem(matchers: Matcher[]): string | null {
  if (!matchers.length) return 'matchers: at least one is needed';
  for (const [i, m] of matchers.entries()) {
    if (m.op === '=~' || m.op === '!~') {
      try {
        new RegExp(m.value);
      } catch (err) {
        return `matchers.${i}.value: not a valid regular expression (${(err as Error).message})`;
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
