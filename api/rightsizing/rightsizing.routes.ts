import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../app.js';
import { errorResponses, MAX_INT4 } from '../http/schemas.js';
import {
  RIGHTSIZING_DEFAULTS as D,
  type RightsizingQuery,
  rightsizing,
  rightsizingCsv,
} from './rightsizing.service.js';

const rightsizingQuery = {
  type: 'object',
  properties: {
    poolId: {
      type: 'integer',
      minimum: 1,
      maximum: MAX_INT4,
      description: 'only VMs and hosts in this pool and the pools below it',
    },
    days: { type: 'integer', minimum: 1, maximum: 90, description: `window in days (default ${D.days})` },
    threshold: {
      type: 'number',
      exclusiveMinimum: 0,
      maximum: 100,
      description: `a VM's CPU or memory is oversized when its p95 is below this % of what it holds (default ${D.threshold})`,
    },
    headroom: {
      type: 'number',
      minimum: 0,
      maximum: 1000,
      description: `% added to the p95 for the suggested size (default ${D.headroom})`,
    },
    hostCpuThreshold: {
      type: 'number',
      minimum: 0,
      maximum: 100,
      description: `a host is idle below this p95 CPU busy % … (default ${D.hostCpuThreshold})`,
    },
    hostLoadThreshold: {
      type: 'number',
      minimum: 0,
      maximum: 1000,
      description: `… and below this p95 5-minute load per CPU (default ${D.hostLoadThreshold})`,
    },
    format: {
      type: 'string',
      enum: ['json', 'csv'],
      description: 'csv: the VM lines as CSV (also `Accept: text/csv`)',
    },
    limit: { type: 'integer', minimum: 1, maximum: 1000, description: 'default 100; CSV: every line' },
    offset: { type: 'integer', minimum: 0, default: 0 },
  },
} as const;

const num = { type: 'number' } as const;
const nullableNum = { type: ['number', 'null'] } as const;
const size = {
  type: 'object',
  required: ['vcpus', 'memoryMiB'],
  properties: { vcpus: { type: 'integer' }, memoryMiB: { type: 'integer' } },
} as const;
const nullable = <T extends object>(schema: T) => ({ anyOf: [schema, { type: 'null' }] }) as const;
const quotaResource = {
  type: 'object',
  required: ['used', 'after', 'limit'],
  properties: { used: num, after: num, limit: nullableNum },
} as const;

const vmSizing = {
  type: 'object',
  required: [
    'vmId',
    'name',
    'poolId',
    'ownerId',
    'status',
    'holds',
    'coverage',
    'p95',
    'suggested',
    'frees',
    'quota',
  ],
  properties: {
    vmId: { type: 'integer' },
    name: { type: 'string' },
    state: { type: 'string' },
    poolId: { type: 'integer' },
    poolName: { type: 'string' },
    ownerId: { type: 'integer' },
    owner: { type: 'string' },
    status: { type: 'string', enum: ['oversized', 'insufficient_data'] },
    holds: size,
    coverage: { type: 'number', description: "share of the window's 5-minute buckets with figures" },
    p95: nullable({
      type: 'object',
      required: ['cpuPercent', 'vcpus', 'memoryMiB', 'memoryPercent'],
      properties: { cpuPercent: num, vcpus: num, memoryMiB: num, memoryPercent: num },
    }),
    suggested: nullable(size),
    frees: nullable(size),
    quota: nullable({
      type: 'object',
      required: ['limitPoolId', 'vcpus', 'memoryMiB'],
      properties: {
        limitPoolId: { type: ['integer', 'null'] },
        vcpus: quotaResource,
        memoryMiB: quotaResource,
      },
    }),
  },
} as const;

const hostSizing = {
  type: 'object',
  required: ['hostId', 'hostname', 'poolId', 'status', 'cpus', 'coverage', 'p95'],
  properties: {
    hostId: { type: 'integer' },
    hostname: { type: 'string' },
    poolId: { type: 'integer' },
    poolName: { type: 'string' },
    status: { type: 'string', enum: ['idle', 'insufficient_data'] },
    cpus: { type: 'integer' },
    memoryMiB: { type: 'integer' },
    coverage: num,
    p95: nullable({
      type: 'object',
      required: ['cpuPercent', 'loadPerCpu'],
      properties: { cpuPercent: num, loadPerCpu: num },
    }),
  },
} as const;

const report = {
  type: 'object',
  required: ['items', 'total', 'hosts', 'window', 'thresholds'],
  properties: {
    items: { type: 'array', items: vmSizing },
    total: { type: 'integer' },
    hosts: { type: 'array', items: hostSizing },
    window: {
      type: 'object',
      required: ['from', 'to', 'days', 'percentile'],
      properties: { from: num, to: num, days: { type: 'integer' }, percentile: num },
    },
    thresholds: {
      type: 'object',
      properties: { threshold: num, headroom: num, hostCpuThreshold: num, hostLoadThreshold: num },
    },
  },
} as const;

export async function rightsizingRoutes(app: FastifyInstance, deps: AppDeps): Promise<void> {
  app.get<{ Querystring: RightsizingQuery & { format?: 'json' | 'csv' } }>(
    '/api/v1/rightsizing',
    {
      schema: {
        tags: ['rightsizing'],
        summary: 'Right-sizing: oversized VMs with a suggested size and what it frees, and idle hosts',
        description:
          'VMs (active states) whose 95th percentile of 5-minute CPU or memory use over `days` is below `threshold` % of what they hold, and VMs with too little data to judge; hosts whose p95 CPU and load stay below the host thresholds. `format=csv` or `Accept: text/csv` answers the VM lines as CSV.',
        querystring: rightsizingQuery,
        response: {
          200: {
            content: {
              'application/json': { schema: report },
              'text/csv': { schema: { type: 'string' } },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const { format, ...query } = request.query;
      const csv =
        format === 'csv' || (format === undefined && /\btext\/csv\b/.test(request.headers.accept ?? ''));
      const answer = await rightsizing(deps, request.user, csv ? { limit: MAX_INT4, ...query } : query);
      if (!csv) return answer;
      return reply
        .type('text/csv; charset=utf-8')
        .header('content-disposition', 'attachment; filename="rightsizing.csv"')
        .send(rightsizingCsv(answer));
    },
  );
}
