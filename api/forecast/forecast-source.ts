import {
  DEFAULT_HORIZON_DAYS,
  type ForecastDeps,
  type ForecastResource,
  MAX_HORIZON_DAYS,
  type PoolForecast,
  poolForecast,
} from './forecast.service.js';

/** What alerting asks of the forecast: one pool's forecast of one resource over a horizon. */
export type ForecastSource = (
  poolId: number,
  resource: ForecastResource,
  horizonDays: number,
) => Promise<PoolForecast>;

/** How long a forecast serves the rules evaluated after it: the history it fits moves by the hour. */
export const FORECAST_CACHE_MS = 5 * 60_000;

/** The horizon a rule's forecast looks over: past its threshold (in days), at least the API's default. */
export function ruleHorizonDays(threshold: number | null): number {
  const wanted = Math.ceil((threshold ?? 0) + 1);
  return Math.min(MAX_HORIZON_DAYS, Math.max(DEFAULT_HORIZON_DAYS, Number.isFinite(wanted) ? wanted : 0));
}

/** Forecasts for alert rules, each kept FORECAST_CACHE_MS so rules evaluated every few seconds refit rarely. */
export function createForecastSource(deps: ForecastDeps, clock: () => number = Date.now): ForecastSource {
  const cache = new Map<string, { at: number; answer: Promise<PoolForecast> }>();
  return (poolId, resource, horizonDays) => {
    const now = clock();
    for (const [k, v] of cache) if (now - v.at > FORECAST_CACHE_MS) cache.delete(k);
    const key = `${poolId}|${resource}|${horizonDays}`;
    let hit = cache.get(key);
    if (!hit) {
      hit = { at: now, answer: poolForecast(deps, poolId, { resource, horizonDays }, now) };
      hit.answer.catch(() => cache.delete(key));
      cache.set(key, hit);
    }
    return hit.answer;
  };
}
