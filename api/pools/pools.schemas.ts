import { balancerSettingsAnswer, balancerSettingsSchema } from '../balancer/settings.js';
import { limitBodySchema } from '../vms/limits.js';

/** JSON schemas of the pool endpoints. */
const settings = {
  quotaPolicy: {
    type: 'string',
    enum: ['alert', 'block', 'suspend-newest'],
    description: 'what happens when live usage exceeds a quota (alerting)',
  },
  quotaGraceSeconds: { type: 'integer', minimum: 0, maximum: 86400 },
  placementPolicy: { type: ['string', 'null'], enum: ['pack', 'spread', 'load', null] },
  cpuAllocationRatio: { type: ['number', 'null'], exclusiveMinimum: 0, maximum: 100 },
  ramAllocationRatio: { type: ['number', 'null'], exclusiveMinimum: 0, maximum: 100 },
  ...limitBodySchema('pool'),
} as const;

const name = { type: 'string', minLength: 1, maxLength: 200, pattern: '\\S' } as const;

export const poolSchema = {
  type: 'object',
  required: ['id', 'name', 'kind', 'parentId'],
  properties: {
    id: { type: 'integer' },
    name: { type: 'string' },
    kind: { type: 'string', enum: ['hardware', 'vm'] },
    parentId: { type: ['integer', 'null'] },
    ...settings,
    balancer: {
      anyOf: [balancerSettingsAnswer, { type: 'null' }],
      description:
        'hardware pools: the balancer settings, defaults filled in (docs/balancer.md); VM pools: null',
    },
    createdAt: { type: 'string', format: 'date-time' },
    role: {
      type: ['string', 'null'],
      enum: ['super', 'admin', 'user', 'monitor', null],
      description: "the caller's effective role on the pool",
    },
  },
} as const;

export const createPoolBody = {
  type: 'object',
  required: ['name', 'kind'],
  additionalProperties: false,
  properties: {
    name,
    kind: { type: 'string', enum: ['hardware', 'vm'] },
    parentId: {
      type: ['integer', 'null'],
      minimum: 1,
      description: 'a hardware pool; omitted: a root hardware pool (super-admin only)',
    },
    ...settings,
  },
} as const;

export const patchPoolBody = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    name,
    parentId: { type: ['integer', 'null'], minimum: 1, description: 'moves the pool' },
    ...settings,
    balancer: {
      ...balancerSettingsSchema,
      type: ['object', 'null'],
      description:
        'hardware pools: the balancer settings to change (the others keep their values; unknown ones are ignored); null: back to the defaults (mode off)',
    },
  },
} as const;

export const poolListQuery = {
  type: 'object',
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
    offset: { type: 'integer', minimum: 0, default: 0 },
    parentId: { type: 'integer', minimum: 1 },
    kind: { type: 'string', enum: ['hardware', 'vm'] },
  },
} as const;

export const deletePoolQuery = {
  type: 'object',
  properties: { moveContentsToParent: { type: 'boolean', default: false } },
} as const;
