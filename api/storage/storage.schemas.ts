/** A libvirt object name herd passes to libvirt: no spaces, no path separators, no leading dash. */
export const objectName = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$' } as const;
const hostName = {
  type: 'string',
  minLength: 1,
  maxLength: 255,
  pattern: '^[A-Za-z0-9.:\\[\\]-]+$',
} as const;
const absolutePath = { type: 'string', minLength: 1, maxLength: 1024, pattern: '^/[^\\s\'"<>&]*$' } as const;

const whenType = (type: string, required: string[]) => ({
  if: { properties: { type: { const: type } } },
  // biome-ignore lint/suspicious/noThenProperty: JSON Schema's if/then, not a thenable
  then: { required },
});

export const createStoragePoolBody = {
  type: 'object',
  required: ['poolId', 'type', 'name'],
  additionalProperties: false,
  properties: {
    poolId: { type: 'integer', minimum: 1, description: 'hardware pool' },
    type: { type: 'string', enum: ['iscsi', 'nfs', 'lvm', 'libvirt'] },
    name: {
      ...objectName,
      description: 'libvirt storage pool name (adopted for `libvirt`, defined otherwise)',
    },
    hostId: {
      type: 'integer',
      minimum: 1,
      description: "the host to act through (default: the pool's first up host)",
    },
    portal: { ...hostName, description: 'iscsi: portal address' },
    port: { type: 'integer', minimum: 1, maximum: 65535, description: 'iscsi: portal port (3260)' },
    targetIqn: {
      type: 'string',
      pattern: '^(iqn|eui|naa)\\.[^\\s\'"<>&]+$',
      maxLength: 223,
      description: 'iscsi',
    },
    server: { ...hostName, description: 'nfs: server' },
    export: { ...absolutePath, description: 'nfs: exported path' },
    mountPoint: { ...absolutePath, description: 'nfs: where hosts mount it (/var/lib/herd/nfs/<name>)' },
    volumeGroup: { type: 'string', pattern: '^[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,127}$', description: 'lvm' },
  },
  allOf: [
    whenType('iscsi', ['portal', 'targetIqn']),
    whenType('nfs', ['server', 'export']),
    whenType('lvm', ['volumeGroup']),
  ],
} as const;

export const storagePoolSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    poolId: { type: 'integer' },
    hostId: { type: ['integer', 'null'] },
    type: { type: 'string' },
    name: { type: 'string' },
    libvirtType: {
      type: ['string', 'null'],
      description: "libvirt's pool type (dir, netfs, logical, iscsi…)",
    },
    params: { type: 'object', additionalProperties: true },
    volumes: { type: 'integer' },
    sizeGiB: { type: 'number' },
    attachedGiB: { type: 'number' },
    supportsVolumeCreation: { type: 'boolean' },
    createdAt: { type: 'string' },
  },
} as const;

export const volumeSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    name: { type: 'string' },
    path: { type: ['string', 'null'] },
    sizeGiB: { type: 'number' },
    vmId: { type: ['integer', 'null'] },
  },
} as const;

export const createVolumeBody = {
  type: 'object',
  required: ['name', 'sizeGiB'],
  additionalProperties: false,
  properties: {
    name: objectName,
    sizeGiB: { type: 'number', exclusiveMinimum: 0, maximum: 1_048_576 },
  },
} as const;

export const refreshBody = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: { hostId: { type: 'integer', minimum: 1, description: 'act through this host from now on' } },
} as const;

export const refreshAnswer = {
  type: 'object',
  properties: {
    added: { type: 'integer' },
    updated: { type: 'integer' },
    removed: { type: 'integer' },
    missing: {
      type: 'array',
      items: { type: 'string' },
      description: 'attached volumes libvirt no longer lists',
    },
  },
} as const;

export const storagePoolListQuery = {
  type: 'object',
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
    offset: { type: 'integer', minimum: 0, default: 0 },
    poolId: { type: 'integer', minimum: 1 },
  },
} as const;

export const volumeParams = {
  type: 'object',
  required: ['id', 'volumeId'],
  properties: { id: { type: 'integer', minimum: 1 }, volumeId: { type: 'integer', minimum: 1 } },
} as const;
