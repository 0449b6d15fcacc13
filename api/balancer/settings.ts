import { badRequest } from '../http/errors.js';
import { type BalancerSettings, DEFAULT_BALANCER_SETTINGS } from './plan.js';

/**
 * The balancer's settings on a hardware pool (`balancer` in `PATCH /api/v1/pools/:id`): what the API accepts, how
 * a change merges into what is stored, and the checks across fields. Stored as given (only the fields an operator
 * set), read back over DEFAULT_BALANCER_SETTINGS, so a default changed in a later release reaches the pools that
 * never set it.
 */

const percent = { type: 'number', minimum: 1, maximum: 100 } as const;
const seconds = (minimum: number, maximum: number) => ({ type: 'integer', minimum, maximum }) as const;
const weight = { type: 'number', minimum: 0, maximum: 1 } as const;

export const balancerSettingsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    mode: {
      type: 'string',
      enum: ['off', 'recommend', 'automatic'],
      description: 'off (default; GET …/balance still shows the dry run), recommend (shows moves), automatic',
    },
    policy: {
      type: 'string',
      enum: ['balance', 'pack'],
      description: 'balance: relieve hot hosts; pack (power saving): also empty lightly used hosts',
    },
    windowSeconds: { ...seconds(60, 3600), description: 'a host must be hot (or cold, pack) this long' },
    highCpuPercent: percent,
    highMemoryPercent: percent,
    hysteresisPercent: { type: 'number', minimum: 0, maximum: 50 },
    lowCpuPercent: { type: 'number', minimum: 0, maximum: 100 },
    packMaxCpuPercent: percent,
    coolDownSeconds: {
      ...seconds(60, 7 * 86400),
      description: 'a VM moved is not moved again for this long',
    },
    failureBackoffSeconds: seconds(60, 86400),
    maxFailureBackoffSeconds: seconds(60, 7 * 86400),
    maxConcurrentMigrations: { type: 'integer', minimum: 1, maximum: 100 },
    maxMigrationsPerHost: { type: 'integer', minimum: 1, maximum: 10 },
    minGain: { type: 'number', minimum: 0, maximum: 10 },
    costPerGiB: { type: 'number', minimum: 0, maximum: 1 },
    weights: {
      type: 'object',
      additionalProperties: false,
      properties: { cpuUsage: weight, cpuAllocation: weight, memory: weight },
    },
    forecastShare: { type: 'number', minimum: 0, maximum: 1 },
  },
} as const;

/** The answer's form: every setting, defaults filled in. */
export const balancerSettingsAnswer = {
  type: 'object',
  properties: balancerSettingsSchema.properties,
} as const;

export type BalancerSettingsInput = Partial<Omit<BalancerSettings, 'weights'>> & {
  weights?: Partial<BalancerSettings['weights']>;
};

/** The settings a pool's stored `balancer` (NULL: none set) stands for. */
export function effectiveSettings(stored: unknown): BalancerSettings {
  const s = (stored && typeof stored === 'object' ? stored : {}) as BalancerSettingsInput;
  return {
    ...DEFAULT_BALANCER_SETTINGS,
    ...s,
    weights: { ...DEFAULT_BALANCER_SETTINGS.weights, ...s.weights },
  };
}

/**
 * Merges a change into the stored settings and checks the result as a whole: 400 naming the field when the
 * thresholds contradict each other. Answers what to store.
 */
export function mergeSettings(stored: unknown, change: BalancerSettingsInput): BalancerSettingsInput {
  const before = (stored && typeof stored === 'object' ? stored : {}) as BalancerSettingsInput;
  const merged: BalancerSettingsInput = { ...before, ...change };
  if (before.weights || change.weights) merged.weights = { ...before.weights, ...change.weights };
  const s = effectiveSettings(merged);
  const fail = (field: string, message: string) => {
    throw badRequest(`balancer.${field}: ${message}`, { field: `balancer.${field}` });
  };
  if (s.hysteresisPercent >= s.highCpuPercent)
    fail('hysteresisPercent', 'must be below highCpuPercent (destinations stay at high − hysteresis)');
  if (s.hysteresisPercent >= s.highMemoryPercent)
    fail('hysteresisPercent', 'must be below highMemoryPercent');
  if (s.lowCpuPercent >= s.packMaxCpuPercent)
    fail(
      'lowCpuPercent',
      'must be below packMaxCpuPercent (a host emptied must be colder than its destinations)',
    );
  if (s.packMaxCpuPercent > s.highCpuPercent)
    fail('packMaxCpuPercent', 'must be at most highCpuPercent (packing must not make hot hosts)');
  if (s.maxFailureBackoffSeconds < s.failureBackoffSeconds)
    fail('maxFailureBackoffSeconds', 'must be at least failureBackoffSeconds');
  if (s.maxMigrationsPerHost > s.maxConcurrentMigrations)
    fail('maxMigrationsPerHost', 'must be at most maxConcurrentMigrations');
  const w = s.weights;
  if (w.cpuUsage + w.cpuAllocation + w.memory <= 0) fail('weights', 'at least one weight must be above 0');
  return merged;
}
