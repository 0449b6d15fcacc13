import { EVENT_SEVERITIES } from './events.service.js';

const name = { type: 'string', minLength: 1, maxLength: 127 } as const;

export const eventSchema = {
  type: 'object',
  required: [
    'id',
    'time',
    'receivedAt',
    'severity',
    'host',
    'plugin',
    'pluginInstance',
    'type',
    'typeInstance',
    'message',
    'hostId',
    'vmId',
  ],
  properties: {
    id: { type: 'integer' },
    time: { type: 'string', format: 'date-time', description: 'the time collectd gave the notification' },
    receivedAt: { type: 'string', format: 'date-time', description: 'when herd stored it' },
    severity: { type: 'string', description: 'failure, warning or okay' },
    host: { type: 'string', description: 'the host part as collectd sent it' },
    plugin: { type: 'string' },
    pluginInstance: { type: 'string' },
    type: { type: 'string' },
    typeInstance: { type: 'string' },
    message: { type: 'string' },
    hostId: { type: ['integer', 'null'], description: 'the host it came from, if herd knows it' },
    vmId: { type: ['integer', 'null'], description: 'the VM it is about, if any' },
  },
} as const;

const filters = {
  severity: { type: 'string', enum: [...EVENT_SEVERITIES] },
  plugin: name,
  type: name,
  since: { type: 'string', format: 'date-time', description: 'notifications at or after this time' },
  until: { type: 'string', format: 'date-time', description: 'notifications before this time' },
  limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
  offset: { type: 'integer', minimum: 0, default: 0 },
} as const;

export const eventListQuery = {
  type: 'object',
  properties: {
    hostId: { type: 'integer', minimum: 1 },
    vmId: { type: 'integer', minimum: 1 },
    ...filters,
  },
} as const;

export const subjectEventQuery = { type: 'object', properties: filters } as const;
