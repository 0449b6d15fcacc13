import { VM_ACTION_RULES } from '../vms/vm-states.js';

const nullableString = { type: ['string', 'null'] } as const;
const TASK_STATES = ['queued', 'running', 'done', 'failed', 'cancelled'];
/** What a task can carry out: every task acts on a VM (evacuating a host asks for one migrate task per VM). */
const TASK_ACTIONS = Object.keys(VM_ACTION_RULES);

export const taskSchema = {
  type: 'object',
  required: ['id', 'state', 'action', 'targetType', 'targetId', 'poolId', 'createdAt'],
  properties: {
    id: { type: 'integer' },
    state: { type: 'string', enum: TASK_STATES },
    action: { type: 'string', enum: TASK_ACTIONS },
    targetType: { type: 'string' },
    targetId: { type: 'integer' },
    poolId: { type: ['integer', 'null'] },
    userId: { type: ['integer', 'null'], description: 'who asked' },
    args: { type: 'object', additionalProperties: true },
    progress: { type: 'number', description: '0..1, for long tasks' },
    progressDetail: {
      type: 'object',
      additionalProperties: true,
      description:
        'what progress was measured from, when the host reports it: libvirt\'s job info while a save, restore or live migration runs ({source: "libvirt", operation, dataProcessedBytes, dataTotalBytes})',
    },
    error: { type: 'string' },
    result: {
      description: 'what the task produced',
      anyOf: [{ type: 'object', additionalProperties: true }, { type: 'null' }],
    },
    cancelRequested: {
      type: 'boolean',
      description:
        'a cancel was asked while it ran (a save, restore or live migration): its worker aborts the host job and ends it cancelled',
    },
    workerId: nullableString,
    createdAt: { type: 'string' },
    startedAt: nullableString,
    finishedAt: nullableString,
  },
} as const;

export const taskListQuery = {
  type: 'object',
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
    offset: { type: 'integer', minimum: 0, default: 0 },
    state: { type: 'string', enum: TASK_STATES },
    action: { type: 'string', maxLength: 64 },
    poolId: { type: 'integer', minimum: 1 },
    targetType: { type: 'string', maxLength: 32 },
    targetId: { type: 'integer', minimum: 1 },
  },
} as const;
