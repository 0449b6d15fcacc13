/** JSON schemas of the user and directory endpoints. */
export const userSchema = {
  type: 'object',
  required: ['id', 'username', 'source', 'isSuperAdmin'],
  properties: {
    id: { type: 'integer' },
    username: { type: 'string' },
    source: { type: 'string', enum: ['local', 'ldap'] },
    displayName: { type: ['string', 'null'] },
    email: { type: ['string', 'null'] },
    isSuperAdmin: { type: 'boolean' },
    disabled: { type: 'boolean' },
    createdAt: { type: 'string', format: 'date-time' },
  },
} as const;

const password = { type: 'string', minLength: 8, maxLength: 1024 } as const;
const displayName = { type: ['string', 'null'], maxLength: 200 } as const;
const email = { type: ['string', 'null'], maxLength: 320, pattern: '^[^@\\s]+@[^@\\s]+$' } as const;

export const createUserBody = {
  type: 'object',
  required: ['username'],
  additionalProperties: false,
  properties: {
    username: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$' },
    password: { ...password, description: 'local users only; without one, a local user cannot log in yet' },
    source: { type: 'string', enum: ['local', 'ldap'], default: 'local' },
    displayName,
    email,
    isSuperAdmin: { type: 'boolean', default: false },
  },
} as const;

export const patchUserBody = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    displayName,
    email,
    password,
    currentPassword: { type: 'string', maxLength: 1024, description: 'required to change your own password' },
    isSuperAdmin: { type: 'boolean' },
    disabled: { type: 'boolean', description: 'a disabled user is logged out and cannot log in' },
  },
} as const;

export const directoryUserSchema = {
  type: 'object',
  required: ['dn', 'username'],
  properties: {
    dn: { type: 'string' },
    username: { type: 'string' },
    displayName: { type: ['string', 'null'] },
    email: { type: ['string', 'null'] },
    userId: { type: ['integer', 'null'], description: 'the herd user, when already added' },
  },
} as const;
