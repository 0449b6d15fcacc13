import {
  FORECAST_FIELDS,
  FORECAST_METRIC_KINDS,
  FORECAST_METRIC_RESOURCES,
  HOST_FIELDS,
  LIVE_FIELDS,
  METRIC_SOURCES,
  NOTIFICATION_SEVERITIES,
  QUOTA_FIELDS,
} from './alert-rule.js';

const nullableInt = { type: ['integer', 'null'] } as const;
const nullableString = { type: ['string', 'null'] } as const;
const nullableTime = { type: ['string', 'null'], format: 'date-time' } as const;
const labels = { type: 'object', additionalProperties: { type: 'string', maxLength: 1000 } } as const;
const severity = { type: 'string', enum: ['info', 'warning', 'critical'] } as const;
const aggregate = { type: 'string', enum: ['mean', 'max', 'min', 'sum'] } as const;

export const metricSchema = {
  type: 'object',
  description:
    `What the rule measures. live: \`field\` (${LIVE_FIELDS.join(', ')}) or a collectd series (plugin, pluginInstance, type, ` +
    `typeInstance, value: data source name or index, rate); store: measurement, field, tags, rate, combine; host: field ` +
    `(${HOST_FIELDS.join(', ')}); quota: field (${QUOTA_FIELDS.join(', ')}); notification: the count of the host's collectd ` +
    'notifications within the window, of severity, plugin, type and with messageMatch in the message, where given; ' +
    `forecast: field (${FORECAST_FIELDS.join(', ')}), ` +
    `resource (${FORECAST_METRIC_RESOURCES.join(', ')}), kind (${FORECAST_METRIC_KINDS.join(', ')}).`,
  required: ['source'],
  additionalProperties: false,
  properties: {
    source: { type: 'string', enum: [...METRIC_SOURCES] },
    field: { type: 'string', minLength: 1, maxLength: 200 },
    plugin: { type: 'string', minLength: 1, maxLength: 127 },
    pluginInstance: { type: 'string', maxLength: 127 },
    type: { type: 'string', minLength: 1, maxLength: 127 },
    typeInstance: { type: 'string', maxLength: 127 },
    value: { anyOf: [{ type: 'string' }, { type: 'integer' }] },
    rate: { type: 'boolean' },
    measurement: { type: 'string', minLength: 1, maxLength: 200 },
    tags: labels,
    combine: aggregate,
    severity: { type: 'string', enum: [...NOTIFICATION_SEVERITIES] },
    messageMatch: {
      type: 'string',
      minLength: 1,
      maxLength: 500,
      description: 'notification: contained, any case',
    },
    resource: { type: 'string', enum: [...FORECAST_METRIC_RESOURCES] },
    kind: { type: 'string', enum: [...FORECAST_METRIC_KINDS] },
  },
} as const;

const ruleSettings = {
  name: { type: 'string', minLength: 1, maxLength: 200 },
  description: { type: 'string', maxLength: 2000 },
  enabled: { type: 'boolean' },
  aggregate: { type: ['string', 'null'], enum: ['mean', 'max', 'min', 'sum', null] },
  metric: metricSchema,
  condition: { type: 'string', enum: ['above', 'below', 'absent'] },
  threshold: { type: ['number', 'null'] },
  windowSeconds: { type: 'integer', minimum: 0, maximum: 86_400 },
  windowFunction: { type: 'string', enum: ['last', 'mean', 'max', 'min'] },
  pendingSeconds: { type: 'integer', minimum: 0, maximum: 604_800 },
  keepFiringSeconds: { type: 'integer', minimum: 0, maximum: 604_800 },
  nodataPolicy: { type: 'string', enum: ['nodata', 'ok', 'alerting', 'keep'] },
  errorPolicy: { type: 'string', enum: ['error', 'ok', 'alerting', 'keep'] },
  severity,
  labels,
  groupWaitSeconds: { type: 'integer', minimum: 0, maximum: 86_400 },
  repeatIntervalSeconds: { type: 'integer', minimum: 60, maximum: 2_592_000 },
  channelIds: { type: ['array', 'null'], items: { type: 'integer', minimum: 1 }, maxItems: 100 },
} as const;

export const ruleSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    builtin: nullableString,
    scope: { type: 'string', enum: ['global', 'pool', 'host'] },
    poolId: nullableInt,
    hostId: nullableInt,
    ...ruleSettings,
    threshold: { type: ['number', 'null'] },
  },
} as const;

export const createRuleBody = {
  type: 'object',
  required: ['name', 'scope', 'metric', 'condition'],
  additionalProperties: false,
  properties: {
    ...ruleSettings,
    scope: { type: 'string', enum: ['global', 'pool', 'host'] },
    poolId: { type: 'integer', minimum: 1 },
    hostId: { type: 'integer', minimum: 1 },
  },
} as const;

/** Scope and subject are fixed at creation (delete and recreate to move a rule). */
export const patchRuleBody = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: ruleSettings,
} as const;

export const ruleListQuery = {
  type: 'object',
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
    offset: { type: 'integer', minimum: 0, default: 0 },
    scope: { type: 'string', enum: ['global', 'pool', 'host'] },
    poolId: { type: 'integer', minimum: 1 },
    hostId: { type: 'integer', minimum: 1 },
    enabled: { type: 'boolean' },
  },
} as const;

const alertStates = ['ok', 'pending', 'firing', 'nodata', 'error'] as const;

export const alertSchema = {
  type: 'object',
  // Every field of an AlertView (alert-view.ts) is always sent; `silenced` only by the list.
  required: [
    'id',
    'ruleId',
    'ruleName',
    'builtin',
    'severity',
    'subject',
    'poolId',
    'hostId',
    'labels',
    'state',
    'value',
    'error',
    'activeSince',
    'firingSince',
    'resolvedAt',
    'lastNotifiedAt',
    'lastEvaluatedAt',
    'stateChangedAt',
  ],
  properties: {
    id: { type: 'integer' },
    ruleId: { type: 'integer' },
    ruleName: { type: 'string' },
    builtin: nullableString,
    severity,
    subject: { type: 'string' },
    poolId: nullableInt,
    hostId: nullableInt,
    labels,
    state: { type: 'string', enum: [...alertStates] },
    value: { type: ['number', 'null'] },
    error: nullableString,
    activeSince: nullableTime,
    firingSince: nullableTime,
    resolvedAt: nullableTime,
    lastNotifiedAt: nullableTime,
    lastEvaluatedAt: nullableTime,
    stateChangedAt: { type: 'string', format: 'date-time' },
    silenced: { type: 'boolean', description: 'an active silence holds its notifications back' },
  },
} as const;

export const alertListQuery = {
  type: 'object',
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
    offset: { type: 'integer', minimum: 0, default: 0 },
    state: {
      type: 'string',
      pattern: `^(${alertStates.join('|')})(,(${alertStates.join('|')}))*$`,
      description: 'one state or several, comma-separated',
    },
    active: { type: 'boolean', description: 'true: not ok (pending, firing, nodata, error)' },
    ruleId: { type: 'integer', minimum: 1 },
    poolId: { type: 'integer', minimum: 1 },
    hostId: { type: 'integer', minimum: 1 },
    severity,
    since: { type: 'string', format: 'date-time', description: 'changed state at or after (recent alerts)' },
  },
} as const;

const notificationSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    channelId: { type: 'integer' },
    ruleId: nullableInt,
    poolId: nullableInt,
    groupKey: { type: 'string' },
    status: { type: 'string', enum: ['grouping', 'sending', 'retrying', 'delivered', 'failed', 'silenced'] },
    alerts: { type: 'array', items: { type: 'object', additionalProperties: true } },
    attempts: { type: 'integer' },
    lastError: nullableString,
    createdAt: { type: 'string', format: 'date-time' },
    notBefore: { type: 'string', format: 'date-time' },
    deliveredAt: nullableTime,
    history: { type: 'array', items: { type: 'object', additionalProperties: true } },
  },
} as const;

export { notificationSchema };

export const alertDetailSchema = {
  type: 'object',
  properties: { ...alertSchema.properties, notifications: { type: 'array', items: notificationSchema } },
} as const;

export const notificationListQuery = {
  type: 'object',
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
    offset: { type: 'integer', minimum: 0, default: 0 },
    channelId: { type: 'integer', minimum: 1 },
    ruleId: { type: 'integer', minimum: 1 },
    alertId: { type: 'integer', minimum: 1 },
    status: { type: 'string', enum: ['grouping', 'sending', 'retrying', 'delivered', 'failed', 'silenced'] },
  },
} as const;

const matcher = {
  type: 'object',
  required: ['name', 'value'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 200 },
    value: { type: 'string', maxLength: 1000 },
    op: { type: 'string', enum: ['=', '!=', '=~', '!~'], default: '=' },
  },
} as const;

export const silenceSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    poolId: nullableInt,
    matchers: { type: 'array', items: matcher },
    startsAt: { type: 'string', format: 'date-time' },
    endsAt: { type: 'string', format: 'date-time' },
    comment: { type: 'string' },
    createdBy: nullableInt,
    createdByName: nullableString,
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
    status: { type: 'string', enum: ['pending', 'active', 'expired'] },
  },
} as const;

export const createSilenceBody = {
  type: 'object',
  required: ['matchers', 'endsAt', 'comment'],
  additionalProperties: false,
  properties: {
    poolId: {
      type: 'integer',
      minimum: 1,
      description: "only this pool's alerts (and below); left out: global (super-admin)",
    },
    matchers: { type: 'array', items: matcher, minItems: 1, maxItems: 50 },
    startsAt: { type: 'string', format: 'date-time', description: 'default now' },
    endsAt: { type: 'string', format: 'date-time' },
    comment: { type: 'string', minLength: 1, maxLength: 2000 },
  },
} as const;

export const patchSilenceBody = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    matchers: createSilenceBody.properties.matchers,
    startsAt: { type: 'string', format: 'date-time' },
    endsAt: { type: 'string', format: 'date-time' },
    comment: createSilenceBody.properties.comment,
  },
} as const;

export const silenceListQuery = {
  type: 'object',
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
    offset: { type: 'integer', minimum: 0, default: 0 },
    active: { type: 'boolean', description: 'only silences in force now' },
  },
} as const;

const channelConfig = {
  type: 'object',
  description:
    'webhook: {url}; email: {to: [addresses], from?, smtp?: {host, port?, secure?, user?, ignoreTLS?, requireTLS?}} ' +
    '(without smtp: the server in HERD_SMTP_URL)',
  additionalProperties: false,
  properties: {
    url: { type: 'string', format: 'uri', maxLength: 2000 },
    to: { type: 'array', items: { type: 'string', format: 'email' }, minItems: 1, maxItems: 50 },
    from: { type: 'string', maxLength: 300 },
    smtp: {
      type: 'object',
      required: ['host'],
      additionalProperties: false,
      properties: {
        host: { type: 'string', minLength: 1, maxLength: 300 },
        port: { type: 'integer', minimum: 1, maximum: 65535 },
        secure: { type: 'boolean' },
        user: { type: 'string', maxLength: 300 },
        ignoreTLS: { type: 'boolean' },
        requireTLS: { type: 'boolean' },
      },
    },
  },
} as const;

export const channelSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    name: { type: 'string' },
    type: { type: 'string', enum: ['webhook', 'email'] },
    poolId: nullableInt,
    config: channelConfig,
    hasSecret: { type: 'boolean' },
    minSeverity: severity,
    sendResolved: { type: 'boolean' },
    enabled: { type: 'boolean' },
    createdBy: nullableInt,
    createdAt: { type: 'string', format: 'date-time' },
    secret: {
      type: 'string',
      description:
        'only in the answer to a creation: the webhook signing key (X-Herd-Signature: sha256=HMAC of the body)',
    },
  },
} as const;

const channelSettings = {
  name: { type: 'string', minLength: 1, maxLength: 200 },
  config: channelConfig,
  secret: {
    type: 'string',
    minLength: 1,
    maxLength: 500,
    description: 'webhook: HMAC key (generated if left out); email: SMTP password',
  },
  minSeverity: severity,
  sendResolved: { type: 'boolean' },
  enabled: { type: 'boolean' },
} as const;

export const createChannelBody = {
  type: 'object',
  required: ['name', 'type', 'config'],
  additionalProperties: false,
  properties: {
    ...channelSettings,
    type: { type: 'string', enum: ['webhook', 'email'] },
    poolId: {
      type: 'integer',
      minimum: 1,
      description: 'the alerts of this pool and below; left out: global (super-admin)',
    },
  },
} as const;

export const patchChannelBody = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: channelSettings,
} as const;
