import type { AlertState } from '../../schema/index.js';
import type { AlertRule, WindowFunction } from './alert-rule.js';

/** What one evaluation saw for one subject. */
export type Observation =
  | { kind: 'value'; value: number }
  | { kind: 'nodata' }
  | { kind: 'error'; message: string }
  /**
   * Not known yet: the process started too recently to tell a silent host from one whose next interval has not
   * come (herd's own downtime is no silence of the host). The instance stays as it was.
   */
  | { kind: 'unknown' };

/** The part of an alert instance the state machine reads and writes (times in ms). */
export interface InstanceState {
  state: AlertState;
  activeSince: number | null;
  firingSince: number | null;
  lastBreachAt: number | null;
  resolvedAt: number | null;
  lastNotifiedAt: number | null;
}

/** What a step asks to be sent: a new firing alert, a resolved one, or a reminder of one still firing. */
export type NotifyKind = 'firing' | 'resolved' | 'repeat';

export const INITIAL_STATE: InstanceState = {
  state: 'ok',
  activeSince: null,
  firingSince: null,
  lastBreachAt: null,
  resolvedAt: null,
  lastNotifiedAt: null,
};

type Signal = 'breach' | 'clear' | 'nodata' | 'error' | 'keep';

type RuleTiming = Pick<
  AlertRule,
  | 'condition'
  | 'threshold'
  | 'pendingSeconds'
  | 'keepFiringSeconds'
  | 'nodataPolicy'
  | 'errorPolicy'
  | 'repeatIntervalSeconds'
>;

/** The observation as the rule reads it, its policies for missing data and errors applied. */
export function signalOf(rule: RuleTiming, obs: Observation): Signal {
  if (obs.kind === 'unknown') return 'keep';
  if (obs.kind === 'error') return policySignal(rule.errorPolicy, 'error');
  if (obs.kind === 'nodata')
    return rule.condition === 'absent' ? 'breach' : policySignal(rule.nodataPolicy, 'nodata');
  if (rule.condition === 'absent') return 'clear';
  const threshold = rule.threshold ?? 0;
  const breach = rule.condition === 'above' ? obs.value > threshold : obs.value < threshold;
  return breach ? 'breach' : 'clear';
}

function policySignal(policy: string, own: 'nodata' | 'error'): Signal {
  if (policy === 'alerting') return 'breach';
  if (policy === 'ok') return 'clear';
  if (policy === 'keep') return 'keep';
  return own;
}

/**
 * One evaluation step: ok → pending (condition true) → firing (true for pendingSeconds) → ok (false for
 * keepFiringSeconds, so a value dancing around the threshold does not flap). `nodata` and `error` states are
 * entered at once and end a pending or firing alert (a firing one is resolved). A firing alert is notified again
 * every repeatIntervalSeconds. Pure: the same inputs always give the same result.
 */
export function step(
  prev: InstanceState,
  obs: Observation,
  rule: RuleTiming,
  now: number,
): { next: InstanceState; notify: NotifyKind | null } {
  const signal = signalOf(rule, obs);
  const next: InstanceState = { ...prev };
  if (signal === 'keep') return repeatIfDue(next, rule, now);

  if (signal === 'breach') {
    next.lastBreachAt = now;
    if (prev.state === 'firing') return repeatIfDue(next, rule, now);
    if (prev.state !== 'pending') {
      next.state = 'pending';
      next.activeSince = now;
    }
    if (now - next.activeSince! >= rule.pendingSeconds * 1000) {
      next.state = 'firing';
      next.firingSince = now;
      next.resolvedAt = null;
      next.lastNotifiedAt = now;
      return { next, notify: 'firing' };
    }
    return { next, notify: null };
  }

  if (signal === 'clear') {
    if (prev.state === 'firing') {
      if (now - (prev.lastBreachAt ?? 0) < rule.keepFiringSeconds * 1000) return repeatIfDue(next, rule, now);
      return { next: resolved(next, 'ok', now), notify: 'resolved' };
    }
    next.state = 'ok';
    next.activeSince = null;
    return { next, notify: null };
  }

  // nodata / error
  if (prev.state === 'firing') return { next: resolved(next, signal, now), notify: 'resolved' };
  next.state = signal;
  next.activeSince = null;
  return { next, notify: null };
}

function resolved(next: InstanceState, state: AlertState, now: number): InstanceState {
  return { ...next, state, activeSince: null, firingSince: null, resolvedAt: now };
}

function repeatIfDue(
  next: InstanceState,
  rule: RuleTiming,
  now: number,
): { next: InstanceState; notify: NotifyKind | null } {
  if (next.state === 'firing' && now - (next.lastNotifiedAt ?? 0) >= rule.repeatIntervalSeconds * 1000) {
    next.lastNotifiedAt = now;
    return { next, notify: 'repeat' };
  }
  return { next, notify: null };
}

/** A window function over samples [time ms, value] inside (now - windowMs, now]; undefined when none is. */
export function windowValue(
  samples: ReadonlyArray<readonly [number, number]>,
  fn: WindowFunction,
  now: number,
  windowMs: number,
): number | undefined {
  const inside = samples.filter(([t]) => t > now - windowMs && t <= now).map(([, v]) => v);
  if (inside.length === 0) return undefined;
  return reduce(inside, fn);
}

export function reduce(values: readonly number[], fn: WindowFunction | 'sum'): number {
  switch (fn) {
    case 'last':
      return values[values.length - 1];
    case 'max':
      return Math.max(...values);
    case 'min':
      return Math.min(...values);
    case 'sum':
      return values.reduce((a, b) => a + b, 0);
    case 'mean':
      return values.reduce((a, b) => a + b, 0) / values.length;
  }
}
