import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../app.js';
import { errorResponses, idParam } from '../http/schemas.js';
import { forecastAnswer, forecastQuery } from './forecast.schemas.js';
import { type ForecastQuery, getPoolForecast } from './forecast.service.js';

export function forecastRoutes(app: FastifyInstance, deps: AppDeps): void {
  app.get<{ Params: { id: number }; Querystring: ForecastQuery }>(
    '/api/v1/pools/:id/forecast',
    {
      schema: {
        tags: ['pools'],
        summary: 'Capacity forecast: use, allocation and quotas of a pool, and when each is full',
        description:
          'Fitted to the last 30 days of hourly buckets (robust linear trend plus time-of-day and day-of-week profiles) and projected `horizonDays` ahead with a 95 % prediction interval.',
        params: idParam,
        querystring: forecastQuery,
        response: { 200: forecastAnswer, ...errorResponses },
      },
    },
    async (request) => getPoolForecast(deps, request.user, request.params.id, request.query),
  );
}
