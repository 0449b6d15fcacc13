/** JSON schemas shared by routes (ids, lists, errors), so every route documents the same shapes. */

/** PostgreSQL `integer`: request integers without bounds of their own get these (api/http/validation.ts). */
export const MAX_INT4 = 2_147_483_647;
export const MIN_INT4 = -2_147_483_648;
/** For `bigint` columns: the largest integer a JSON number carries exactly. */
export const MAX_BIGINT_SAFE = Number.MAX_SAFE_INTEGER;

export const idParam = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'integer', minimum: 1 } },
} as const;

export const errorSchema = {
  type: 'object',
  required: ['error', 'message'],
  properties: { error: { type: 'string' }, message: { type: 'string' } },
  additionalProperties: true,
} as const;

export const listQuery = {
  type: 'object',
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
    offset: { type: 'integer', minimum: 0, default: 0 },
  },
} as const;

export function listOf(item: object) {
  return {
    type: 'object',
    required: ['items', 'total'],
    properties: { items: { type: 'array', items: item }, total: { type: 'integer' } },
  } as const;
}

export const createdSchema = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'integer' } },
  additionalProperties: true,
} as const;

/** Standard error responses to spread into a route's `response` schema. */
export const errorResponses = {
  400: errorSchema,
  401: errorSchema,
  403: errorSchema,
  404: errorSchema,
  409: errorSchema,
} as const;
