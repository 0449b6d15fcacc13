import { MAX_BIGINT_SAFE } from '../http/schemas.js';

/** JSON schemas of the quota and usage endpoints. */
const limit = (type: 'integer' | 'number', description: string, maximum?: number) =>
  ({
    type: [type, 'null'],
    minimum: 0,
    ...(maximum === undefined ? {} : { maximum }),
    description: `${description}; absent or null: unlimited`,
  }) as const;

export const limitsProperties = {
  vcpus: limit('integer', 'vCPUs of running (or starting, paused…) VMs'),
  memoryMiB: limit('integer', 'MiB of memory of running VMs', MAX_BIGINT_SAFE),
  storageGiB: limit('number', 'GiB of volumes of every VM, in any state'),
  nics: limit('integer', 'NICs of running VMs'),
  vms: limit('integer', 'running VMs'),
} as const;

export const quotaBody = {
  type: 'object',
  additionalProperties: false,
  properties: limitsProperties,
} as const;

export const quotaSchema = {
  type: 'object',
  required: ['poolId', 'userId', 'vcpus', 'memoryMiB', 'storageGiB', 'nics', 'vms'],
  properties: {
    poolId: { type: 'integer' },
    userId: { type: ['integer', 'null'], description: 'null: the pool total' },
    username: { type: ['string', 'null'] },
    ...limitsProperties,
  },
} as const;

export const poolUserParams = {
  type: 'object',
  required: ['id', 'userId'],
  properties: { id: { type: 'integer', minimum: 1 }, userId: { type: 'integer', minimum: 1 } },
} as const;

const usedLimit = {
  type: 'object',
  required: ['used', 'limit'],
  properties: { used: { type: 'number' }, limit: { type: ['number', 'null'] } },
} as const;

const usageLine = {
  vcpus: usedLimit,
  memoryMiB: usedLimit,
  storageGiB: usedLimit,
  nics: usedLimit,
  vms: usedLimit,
  limitPoolId: {
    type: ['integer', 'null'],
    description: 'the pool whose quota gives the limits: this one or its nearest ancestor with one',
  },
} as const;

export const usageSchema = {
  type: 'object',
  required: ['poolId', 'total', 'users'],
  properties: {
    poolId: { type: 'integer' },
    total: { type: 'object', properties: usageLine },
    users: {
      type: 'array',
      items: {
        type: 'object',
        properties: { userId: { type: 'integer' }, username: { type: 'string' }, ...usageLine },
      },
    },
  },
} as const;

export const reconcileSchema = {
  type: 'object',
  required: ['pools', 'vms', 'differences'],
  properties: {
    pools: { type: 'integer' },
    vms: { type: 'integer' },
    differences: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          poolId: { type: 'integer' },
          userId: { type: ['integer', 'null'] },
          resource: { type: 'string' },
          recounted: { type: 'number' },
          reported: { type: 'number' },
        },
      },
    },
  },
} as const;
