import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../app.js';
import { errorResponses, errorSchema } from '../http/schemas.js';
import { MAX_WIDTH } from './graph-step.js';
import { METRIC_NAMES } from './metric-catalog.js';
import { type GraphQuery, graph } from './metrics.service.js';

const graphQuery = {
  type: 'object',
  required: ['entity', 'metric'],
  properties: {
    entity: {
      type: 'string',
      pattern: '^(host|vm|pool):[0-9]+$',
      description: 'host:<id>, vm:<id> or pool:<id>',
    },
    metric: {
      type: 'string',
      enum: METRIC_NAMES,
      description:
        'host and hardware pool: cpu, memory, load, network, disk; VM and VM pool: cpu, memory, network, disk',
    },
    from: {
      type: 'string',
      description: 'seconds since the epoch or ISO 8601; default: an hour before `to`',
    },
    to: { type: 'string', description: 'seconds since the epoch or ISO 8601; default: now' },
    step: {
      type: 'number',
      exclusiveMinimum: 0,
      description: 'bucket width in seconds (a minimum: raised to fit `width`)',
    },
    width: {
      type: 'integer',
      minimum: 1,
      maximum: MAX_WIDTH,
      description: 'graph width in pixels: at most this many buckets',
    },
  },
} as const;

const point = {
  type: 'array',
  items: [{ type: 'number' }, { type: ['number', 'null'] }, { type: ['number', 'null'] }],
  description: '[bucket start (s), average, peak]',
} as const;

const graphAnswer = {
  type: 'object',
  required: ['entity', 'metric', 'unit', 'from', 'to', 'step', 'source', 'series'],
  properties: {
    entity: { type: 'string' },
    metric: { type: 'string' },
    title: { type: 'string' },
    unit: { type: 'string', enum: ['%', 'bytes/s', 'MiB', ''] },
    from: { type: 'number' },
    to: { type: 'number' },
    step: { type: 'number' },
    partialFrom: {
      type: 'number',
      description:
        'start of the first bucket that is not complete yet (its figures may still arrive): the dashboard leaves such buckets out',
    },
    source: { type: 'string', enum: ['raw', 'rollup'] },
    series: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'points'],
        properties: { name: { type: 'string' }, points: { type: 'array', items: point } },
      },
    },
  },
} as const;

export async function metricsRoutes(app: FastifyInstance, deps: AppDeps): Promise<void> {
  app.get<{ Querystring: GraphQuery }>(
    '/api/v1/metrics',
    {
      schema: {
        tags: ['metrics'],
        summary: 'A graph: average and peak per bucket of one metric of a host, VM or pool',
        description:
          "Buckets are `step` seconds wide, never more than `width`; ranges longer than the raw retention read the 5-minute rollups (`source`). Counters come as rates. Peaks of summed lines are the sum of the parts' peaks. Where a line has no data for longer than a bucket and two collectd intervals (a host down, a counter reset), a point of nulls marks the gap.",
        querystring: graphQuery,
        response: { 200: graphAnswer, 503: errorSchema, ...errorResponses },
      },
    },
    async (request) => graph(deps, request.user, request.query),
  );
}
