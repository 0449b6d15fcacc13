/** JSON schemas of the session, me and token endpoints. */
export const authUserSchema = {
  type: 'object',
  required: ['id', 'username', 'isSuperAdmin'],
  properties: { id: { type: 'integer' }, username: { type: 'string' }, isSuperAdmin: { type: 'boolean' } },
} as const;

export const loginBody = {
  type: 'object',
  required: ['username', 'password'],
  additionalProperties: false,
  properties: {
    username: { type: 'string', minLength: 1, maxLength: 200 },
    password: { type: 'string', minLength: 1, maxLength: 1024 },
  },
} as const;

export const loginAnswer = {
  type: 'object',
  required: ['token', 'csrfToken', 'expiresAt', 'user'],
  properties: {
    token: { type: 'string', description: 'also usable as `Authorization: Bearer <token>`' },
    csrfToken: {
      type: 'string',
      description: 'send as `x-csrf-token` on writes authenticated by the cookie',
    },
    expiresAt: { type: 'string', format: 'date-time' },
    user: authUserSchema,
  },
} as const;

export const meAnswer = {
  type: 'object',
  required: ['id', 'username', 'source', 'isSuperAdmin'],
  properties: {
    id: { type: 'integer' },
    username: { type: 'string' },
    source: { type: 'string', enum: ['local', 'ldap'] },
    displayName: { type: ['string', 'null'] },
    email: { type: ['string', 'null'] },
    isSuperAdmin: { type: 'boolean' },
  },
} as const;

export const tokenBody = {
  type: 'object',
  required: ['name'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 200 },
    expiresInDays: { type: 'integer', minimum: 1, maximum: 3650, default: 90 },
  },
} as const;

export const tokenSchema = {
  type: 'object',
  required: ['id', 'name', 'createdAt', 'expiresAt'],
  properties: {
    id: { type: 'integer' },
    name: { type: 'string' },
    createdAt: { type: 'string', format: 'date-time' },
    expiresAt: { type: 'string', format: 'date-time' },
    lastUsedAt: { type: ['string', 'null'], format: 'date-time' },
  },
} as const;

export const createdToken = {
  type: 'object',
  required: ['id', 'token', 'name', 'expiresAt'],
  properties: {
    id: { type: 'integer' },
    token: { type: 'string', description: 'shown only once' },
    name: { type: 'string' },
    expiresAt: { type: 'string', format: 'date-time' },
  },
} as const;
