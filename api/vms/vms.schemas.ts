import { limitBodySchema, vmLimitsAnswerSchema } from './limits.js';
import { VM_ACTIONS, VM_STATES } from './vm-states.js';

const nullableString = { type: ['string', 'null'] } as const;
const nullableInteger = { type: ['integer', 'null'] } as const;

/** Names a VM can carry (they also make its libvirt domain name). */
const vmName = {
  type: 'string',
  minLength: 1,
  maxLength: 63,
  pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$',
} as const;
const vcpus = { type: 'integer', minimum: 1, maximum: 1024 } as const;
const memoryMiB = { type: 'integer', minimum: 16, maximum: 16 * 1024 * 1024 } as const;
const network = {
  type: 'string',
  minLength: 1,
  maxLength: 64,
  pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$',
} as const;

const hostPath = { type: 'string', minLength: 2, maxLength: 4096, pattern: '^/[^\\u0000]*$' } as const;
/** Direct Linux boot: files on the VM's host (super-admin only: qemu reads them as root). */
const linuxBoot = {
  type: ['object', 'null'],
  required: ['kernel'],
  additionalProperties: false,
  description:
    'boot this kernel (and initrd, with this command line) from files on the host instead of from disk; null: disk',
  properties: {
    kernel: { ...hostPath, description: 'absolute path on the host' },
    initrd: { ...hostPath, description: 'absolute path on the host' },
    cmdline: { type: 'string', maxLength: 2048 },
  },
} as const;

const pinned = {
  type: 'boolean',
  description: 'never moved by the balancer (a per-VM "do not move" flag); default false',
} as const;

const virtType = {
  type: ['string', 'null'],
  enum: ['kvm', 'qemu', null],
  description:
    "overrides the host's virtType for this VM (Proxmox's per-VM KVM switch): kvm, or qemu (TCG emulation); null: the host's. Takes effect at the next start",
} as const;

export const vmSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    uuid: { type: 'string' },
    name: { type: 'string' },
    poolId: { type: 'integer' },
    ownerId: { type: 'integer' },
    state: { type: 'string', enum: [...VM_STATES] },
    hostId: nullableInteger,
    migrationHostId: { ...nullableInteger, description: 'while migrating: the destination' },
    vcpus: { type: 'integer' },
    memoryMiB: { type: 'integer' },
    bootNetwork: { type: 'boolean', description: 'boots from its install image (network or ISO) first' },
    ...vmLimitsAnswerSchema(),
    virtType,
    pinned,
    linuxBoot: {
      type: ['object', 'null'],
      properties: { kernel: { type: 'string' }, initrd: nullableString, cmdline: nullableString },
    },
    image: {
      type: ['object', 'null'],
      properties: {
        id: { type: 'integer' },
        name: { type: 'string' },
        kind: { type: 'string', enum: ['network', 'iso'] },
      },
    },
    volumes: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          id: { type: 'integer' },
          name: { type: 'string' },
          sizeGiB: { type: 'number' },
          path: nullableString,
          storagePoolId: { type: 'integer' },
        },
      },
    },
    nics: {
      type: 'array',
      items: { type: 'object', properties: { mac: { type: 'string' }, network: { type: 'string' } } },
    },
    taskId: { ...nullableInteger, description: 'the task acting on the VM now' },
    savePath: { ...nullableString, description: 'where the saved image of a saved VM is' },
    startedAt: nullableString,
    stateChangedAt: { type: 'string' },
    createdAt: { type: 'string' },
  },
} as const;

export const createVmBody = {
  type: 'object',
  required: ['name', 'poolId', 'vcpus', 'memoryMiB'],
  additionalProperties: false,
  properties: {
    name: vmName,
    poolId: { type: 'integer', minimum: 1, description: 'a VM pool' },
    vcpus,
    memoryMiB,
    volumes: {
      type: 'array',
      maxItems: 26,
      items: { type: 'integer', minimum: 1 },
      description: 'volume ids to attach as disks (each free, in storage of a pool above the VM pool)',
    },
    nics: {
      description: 'how many NICs on the default network, or one entry per NIC (default: 1)',
      anyOf: [
        { type: 'integer', minimum: 0, maximum: 16 },
        {
          type: 'array',
          maxItems: 16,
          items: { type: 'object', additionalProperties: false, properties: { network } },
        },
      ],
    },
    imageId: { type: 'integer', minimum: 1, description: 'install image: the VM boots from it first' },
    linuxBoot,
    ...limitBodySchema('vm'),
    virtType,
    pinned,
  },
} as const;

export const patchVmBody = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    name: vmName,
    vcpus,
    memoryMiB,
    volumes: {
      type: 'array',
      maxItems: 26,
      items: { type: 'integer', minimum: 1 },
      description: 'the volumes wanted',
    },
    bootNetwork: { type: 'boolean' },
    linuxBoot,
    ...limitBodySchema('vm'),
    virtType,
    pinned,
  },
} as const;

export const vmListQuery = {
  type: 'object',
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
    offset: { type: 'integer', minimum: 0, default: 0 },
    poolId: { type: 'integer', minimum: 1 },
    hostId: { type: 'integer', minimum: 1 },
    state: { type: 'string', enum: [...VM_STATES] },
  },
} as const;

export const actionBody = {
  type: 'object',
  required: ['action'],
  additionalProperties: false,
  properties: {
    action: { type: 'string', enum: [...VM_ACTIONS] },
    hostId: {
      type: 'integer',
      minimum: 1,
      description: 'start/restore: manual placement; migrate: destination (placement chooses when absent)',
    },
    timeoutSeconds: {
      type: 'integer',
      minimum: 1,
      maximum: 3600,
      description: 'shutdown: how long the guest may take (default 120)',
    },
    force: { type: 'boolean', description: 'shutdown: power off when the guest does not shut down in time' },
  },
} as const;

export const taskIdAnswer = {
  type: 'object',
  required: ['taskId'],
  properties: { taskId: { type: 'integer' } },
} as const;

const inventorySchema = {
  type: 'object',
  properties: {
    total: { type: 'number' },
    reserved: { type: 'number' },
    ratio: { type: 'number' },
    capacity: { type: 'number' },
    allocated: { type: 'number' },
  },
} as const;

const decisionSchema = {
  type: 'object',
  properties: {
    action: { type: 'string' },
    decidedAt: { type: 'string' },
    policy: { type: 'string', enum: ['pack', 'spread', 'load'] },
    request: { type: 'object', properties: { vcpus: { type: 'integer' }, memoryMiB: { type: 'integer' } } },
    requestedHostId: nullableInteger,
    chosenHostId: nullableInteger,
    message: { type: 'string' },
    candidates: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          hostId: { type: 'integer' },
          hostname: { type: 'string' },
          state: { type: 'string' },
          enabled: { type: 'boolean' },
          eligible: { type: 'boolean' },
          reasons: { type: 'array', items: { type: 'string' } },
          score: { type: ['number', 'null'] },
          rank: nullableInteger,
          inventory: { type: 'object', properties: { vcpus: inventorySchema, memoryMiB: inventorySchema } },
          live: {
            type: ['object', 'null'],
            properties: {
              ageSeconds: { type: 'number' },
              memoryFreeMiB: { type: 'number' },
              load1: { type: 'number' },
              cpuBusyPercent: { type: 'number' },
              cpuCount: { type: 'integer' },
            },
          },
        },
      },
    },
  },
} as const;

export const placementAnswer = {
  type: 'object',
  properties: {
    vmId: { type: 'integer' },
    hardwarePoolId: { type: 'integer' },
    policy: { type: 'string' },
    last: { anyOf: [decisionSchema, { type: 'null' }], description: 'the last decision made for the VM' },
    hypothetical: {
      ...decisionSchema,
      description: 'what placement would decide now (start, or migrate if active)',
    },
  },
} as const;
