import { DEFAULT_HORIZON_DAYS, FORECAST_RESOURCES, MAX_HORIZON_DAYS } from './forecast.service.js';

export const forecastQuery = {
  type: 'object',
  properties: {
    horizonDays: {
      type: 'integer',
      minimum: 1,
      maximum: MAX_HORIZON_DAYS,
      default: DEFAULT_HORIZON_DAYS,
      description: 'how far past now to forecast, in days',
    },
    resource: {
      type: 'string',
      enum: [...FORECAST_RESOURCES],
      description: 'only this resource (quota rows: vcpus, memoryMiB or storageGiB); default: all',
    },
  },
} as const;

const nullableNumber = { type: ['number', 'null'] } as const;
const pair = {
  type: 'array',
  items: [{ type: 'number' }, { type: 'number' }],
  description: '[bucket start (s), mean]',
} as const;

const seriesForecast = {
  capacity: { ...nullableNumber, description: 'the capacity or limit the forecast is measured against' },
  insufficientHistory: { type: 'boolean' },
  reason: { type: ['string', 'null'], description: 'why there is no forecast' },
  history: { type: 'array', items: pair },
  forecast: {
    type: 'array',
    items: {
      type: 'object',
      required: ['time', 'value', 'lower', 'upper'],
      properties: {
        time: { type: 'number' },
        value: { type: 'number' },
        lower: { type: 'number' },
        upper: { type: 'number' },
      },
    },
  },
  fullInDays: {
    type: ['object', 'null'],
    description:
      'days until full: likely (the forecast), low (its upper bound: the earliest), high (its lower bound: the latest; null past the horizon); null: not full within the horizon',
    required: ['low', 'likely', 'high'],
    properties: { low: { type: 'number' }, likely: { type: 'number' }, high: nullableNumber },
  },
  slopePerDay: {
    type: ['object', 'null'],
    required: ['value', 'lower', 'upper'],
    properties: { value: { type: 'number' }, lower: { type: 'number' }, upper: { type: 'number' } },
  },
  seasonality: { type: 'string', enum: ['none', 'daily', 'daily+weekly'] },
} as const;
const seriesRequired = ['capacity', 'insufficientHistory', 'history', 'forecast', 'fullInDays'] as const;

export const forecastAnswer = {
  type: 'object',
  required: [
    'poolId',
    'kind',
    'now',
    'from',
    'horizonDays',
    'stepSeconds',
    'coverage',
    'resources',
    'quotas',
  ],
  properties: {
    poolId: { type: 'integer' },
    kind: { type: 'string', enum: ['hardware', 'vm'] },
    now: { type: 'number' },
    from: { type: 'number', description: 'start of the history read (s)' },
    horizonDays: { type: 'integer' },
    stepSeconds: { type: 'integer' },
    coverage: { type: 'number', description: 'of the prediction interval' },
    resources: {
      type: 'array',
      items: {
        type: 'object',
        required: ['resource', 'kind', 'unit', ...seriesRequired],
        properties: {
          resource: { type: 'string', enum: [...FORECAST_RESOURCES] },
          kind: { type: 'string', enum: ['use', 'allocation'] },
          unit: { type: 'string' },
          ...seriesForecast,
        },
      },
    },
    quotas: {
      type: 'array',
      items: {
        type: 'object',
        required: ['poolId', 'userId', 'resource', ...seriesRequired],
        properties: {
          poolId: { type: 'integer' },
          userId: { type: ['integer', 'null'], description: 'null: the pool-total quota' },
          username: { type: ['string', 'null'] },
          resource: { type: 'string', enum: ['vcpus', 'memoryMiB', 'storageGiB', 'nics', 'vms'] },
          ...seriesForecast,
        },
      },
    },
  },
} as const;
