import { MAX_BIGINT_SAFE } from '../http/schemas.js';

const nullableNumber = { type: ['number', 'null'] } as const;
const nullableString = { type: ['string', 'null'] } as const;

const nic = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', maxLength: 64 }, mac: { type: 'string', maxLength: 32 } },
} as const;

/** libvirt connection URIs herd speaks: driver[+transport]://[host]/path. */
const uri = { type: 'string', minLength: 3, maxLength: 1024, pattern: '^[a-z][a-z0-9+]*://' } as const;

export const hostSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    poolId: { type: 'integer' },
    uri: { type: 'string' },
    hostname: { type: 'string' },
    uuid: nullableString,
    arch: nullableString,
    cpus: { type: 'integer' },
    cores: { type: ['integer', 'null'] },
    mhz: { type: ['integer', 'null'] },
    memoryMiB: { type: 'integer' },
    nics: { type: 'array', items: nic },
    enabled: { type: 'boolean' },
    state: { type: 'string', enum: ['unknown', 'up', 'unreachable', 'down'] },
    lastSeen: { ...nullableString, description: 'last collectd packet (ISO time)' },
    heartbeatAt: { ...nullableString, description: 'last libvirt heartbeat answered' },
    heartbeatError: nullableString,
    reservedVcpus: { type: 'integer' },
    reservedMemoryMiB: { type: 'integer' },
    cpuAllocationRatio: nullableNumber,
    ramAllocationRatio: nullableNumber,
    virtType: {
      type: 'string',
      enum: ['auto', 'kvm', 'qemu'],
      description:
        'the setting: auto (KVM only where libvirt offers it and the CPU shows vmx/svm), kvm, or qemu (TCG)',
    },
    effectiveVirtType: {
      type: ['string', 'null'],
      enum: ['kvm', 'qemu', 'test', null],
      description: 'what guests defined on this host get now (null: none can be, see virtTypeReason)',
    },
    virtTypeReason: { type: 'string', description: 'why, in words' },
    collectd: {
      type: 'object',
      properties: {
        lastSeen: nullableString,
        interval: nullableNumber,
        silent: { type: 'boolean', description: 'no packet for 3 intervals, or none ever' },
      },
    },
    live: {
      type: ['object', 'null'],
      description: 'latest figures from collectd (null when this process has no live view of the host)',
      properties: {
        interval: { type: 'number' },
        load1: { type: 'number' },
        load5: { type: 'number' },
        load15: { type: 'number' },
        memoryFreeMiB: { type: 'number' },
        memoryUsedMiB: { type: 'number' },
        cpuBusyPercent: { type: 'number' },
        cpuCount: { type: 'integer' },
      },
    },
    vms: {
      type: 'array',
      items: {
        type: 'object',
        properties: { id: { type: 'integer' }, name: { type: 'string' }, state: { type: 'string' } },
      },
    },
    createdAt: { type: 'string' },
  },
} as const;

export const addHostBody = {
  type: 'object',
  required: ['uri', 'poolId'],
  additionalProperties: false,
  properties: { uri, poolId: { type: 'integer', minimum: 1 } },
} as const;

export const addHostAnswer = {
  type: 'object',
  required: ['id', 'hostname', 'cpus', 'memoryMiB'],
  properties: hostSchema.properties,
} as const;

export const registerBody = {
  type: 'object',
  required: ['uri', 'hostname', 'cpus', 'memoryMiB'],
  additionalProperties: false,
  properties: {
    uri,
    hostname: { type: 'string', minLength: 1, maxLength: 255 },
    uuid: { type: 'string', format: 'uuid' },
    arch: { type: 'string', maxLength: 32 },
    cpus: { type: 'integer', minimum: 1, maximum: 65536 },
    cores: { type: 'integer', minimum: 1, maximum: 65536 },
    mhz: { type: 'integer', minimum: 0 },
    memoryMiB: { type: 'integer', minimum: 1, maximum: MAX_BIGINT_SAFE },
    nics: { type: 'array', maxItems: 256, items: nic },
  },
} as const;

export const registerAnswer = {
  type: 'object',
  required: ['id', 'created'],
  properties: {
    id: { type: 'integer' },
    created: { type: 'boolean' },
    enabled: { type: 'boolean' },
    poolId: { type: 'integer' },
  },
} as const;

export const patchHostBody = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    enabled: { type: 'boolean' },
    poolId: { type: 'integer', minimum: 1 },
    reservedVcpus: { type: 'integer', minimum: 0 },
    reservedMemoryMiB: { type: 'integer', minimum: 0, maximum: MAX_BIGINT_SAFE },
    cpuAllocationRatio: { type: ['number', 'null'], exclusiveMinimum: 0, maximum: 64 },
    ramAllocationRatio: { type: ['number', 'null'], exclusiveMinimum: 0, maximum: 64 },
    virtType: { type: 'string', enum: ['auto', 'kvm', 'qemu'] },
  },
} as const;

export const hostListQuery = {
  type: 'object',
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
    offset: { type: 'integer', minimum: 0, default: 0 },
    poolId: { type: 'integer', minimum: 1 },
  },
} as const;

export const evacuateAnswer = {
  type: 'object',
  required: ['taskIds'],
  properties: {
    taskIds: { type: 'array', items: { type: 'integer' } },
    skipped: {
      type: 'array',
      items: { type: 'object', properties: { vmId: { type: 'integer' }, reason: { type: 'string' } } },
    },
  },
} as const;
