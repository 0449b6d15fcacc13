import type { FastifyInstance } from 'fastify';
import { OutboundGuard } from '../../lib/outbound-guard.js';
import type { AppDeps } from '../app.js';
import { errorResponses, idParam, listOf, listQuery } from '../http/schemas.js';
import {
  type CreateRuleBody,
  createAlertRule,
  deleteAlertRule,
  getAlertRule,
  listAlertRules,
  type PatchRuleBody,
  patchAlertRule,
} from './alert-rules.service.js';
import type { NotificationFilter } from './alerts.repository.js';
import {
  alertDetailSchema,
  alertListQuery,
  alertSchema,
  channelSchema,
  createChannelBody,
  createRuleBody,
  createSilenceBody,
  notificationListQuery,
  notificationSchema,
  patchChannelBody,
  patchRuleBody,
  patchSilenceBody,
  ruleListQuery,
  ruleSchema,
  silenceListQuery,
  silenceSchema,
} from './alerts.schemas.js';
import { type AlertQuery, getAlert, listAlerts, listDeliveries } from './alerts.service.js';
import {
  type ChannelBody,
  createChannel,
  getChannel,
  listChannelsFor,
  patchChannel,
  removeChannel,
} from './channels.service.js';
import {
  createSilence,
  getSilence,
  listSilencesFor,
  patchSilence,
  removeSilence,
  type SilenceBody,
} from './silences.service.js';

type Page = { limit: number; offset: number };
const noContent = { 204: { type: 'null' }, ...errorResponses } as const;

/** /api/v1/alert-rules, /api/v1/alerts, /api/v1/silences, /api/v1/notification-channels, /api/v1/notifications. */
export function alertRoutes(app: FastifyInstance, { db, config }: AppDeps): void {
  const targets = new OutboundGuard(config.alerting.webhookAllow);
  const tags = ['alerts'];

  app.get<{
    Querystring: Page & {
      scope?: 'global' | 'pool' | 'host';
      poolId?: number;
      hostId?: number;
      enabled?: boolean;
    };
  }>(
    '/api/v1/alert-rules',
    {
      schema: {
        tags,
        summary: 'Alert rules the caller may see',
        querystring: ruleListQuery,
        response: { 200: listOf(ruleSchema), ...errorResponses },
      },
    },
    async (request) => {
      const { limit, offset, ...filter } = request.query;
      return listAlertRules(db, request.user, filter, { limit, offset });
    },
  );
  app.post<{ Body: CreateRuleBody }>(
    '/api/v1/alert-rules',
    {
      schema: {
        tags,
        summary:
          'Create a rule: global (super-admin), on a pool (each host, or `aggregate` for the pool) or on a host',
        body: createRuleBody,
        response: { 201: ruleSchema, ...errorResponses },
      },
    },
    async (request, reply) => reply.status(201).send(await createAlertRule(db, request.user, request.body)),
  );
  app.get<{ Params: { id: number } }>(
    '/api/v1/alert-rules/:id',
    {
      schema: {
        tags,
        summary: 'An alert rule',
        params: idParam,
        response: { 200: ruleSchema, ...errorResponses },
      },
    },
    async (request) => getAlertRule(db, request.user, request.params.id),
  );
  app.patch<{ Params: { id: number }; Body: PatchRuleBody }>(
    '/api/v1/alert-rules/:id',
    {
      schema: {
        tags,
        summary: "Change a rule's settings (built-in ones too)",
        params: idParam,
        body: patchRuleBody,
        response: { 200: ruleSchema, ...errorResponses },
      },
    },
    async (request) => patchAlertRule(db, request.user, request.params.id, request.body),
  );
  app.delete<{ Params: { id: number } }>(
    '/api/v1/alert-rules/:id',
    {
      schema: {
        tags,
        summary: 'Delete a rule and its alerts (built-in rules: 409, disable them)',
        params: idParam,
        response: noContent,
      },
    },
    async (request, reply) => {
      await deleteAlertRule(db, request.user, request.params.id);
      return reply.status(204).send();
    },
  );

  app.get<{ Querystring: Page & Omit<AlertQuery, 'state'> & { state?: string } }>(
    '/api/v1/alerts',
    {
      schema: {
        tags,
        summary: 'Current and recent alerts of the pools the caller may view, latest change first',
        querystring: alertListQuery,
        response: { 200: listOf(alertSchema), ...errorResponses },
      },
    },
    async (request) => {
      const { limit, offset, ...q } = request.query;
      const state = q.state?.split(',') as AlertQuery['state'];
      return listAlerts(db, request.user, { ...q, state }, { limit, offset });
    },
  );
  app.get<{ Params: { id: number } }>(
    '/api/v1/alerts/:id',
    {
      schema: {
        tags,
        summary: 'An alert with its notifications',
        params: idParam,
        response: { 200: alertDetailSchema, ...errorResponses },
      },
    },
    async (request) => getAlert(db, request.user, request.params.id),
  );

  app.get<{ Querystring: Page & Omit<NotificationFilter, 'pools'> }>(
    '/api/v1/notifications',
    {
      schema: {
        tags,
        summary: 'Delivery history: notifications with every attempt',
        querystring: notificationListQuery,
        response: { 200: listOf(notificationSchema), ...errorResponses },
      },
    },
    async (request) => {
      const { limit, offset, ...filter } = request.query;
      return listDeliveries(db, request.user, filter, { limit, offset });
    },
  );

  const silenceTags = ['silences'];
  app.get<{ Querystring: Page & { active?: boolean } }>(
    '/api/v1/silences',
    {
      schema: {
        tags: silenceTags,
        summary: 'Silences',
        querystring: silenceListQuery,
        response: { 200: listOf(silenceSchema), ...errorResponses },
      },
    },
    async (request) => listSilencesFor(db, request.user, request.query.active, request.query),
  );
  app.post<{ Body: SilenceBody }>(
    '/api/v1/silences',
    {
      schema: {
        tags: silenceTags,
        summary: 'Hold back notifications of alerts whose labels match, from startsAt to endsAt',
        body: createSilenceBody,
        response: { 201: silenceSchema, ...errorResponses },
      },
    },
    async (request, reply) => reply.status(201).send(await createSilence(db, request.user, request.body)),
  );
  app.get<{ Params: { id: number } }>(
    '/api/v1/silences/:id',
    {
      schema: {
        tags: silenceTags,
        summary: 'A silence',
        params: idParam,
        response: { 200: silenceSchema, ...errorResponses },
      },
    },
    async (request) => getSilence(db, request.user, request.params.id),
  );
  app.patch<{ Params: { id: number }; Body: Partial<Omit<SilenceBody, 'poolId'>> }>(
    '/api/v1/silences/:id',
    {
      schema: {
        tags: silenceTags,
        summary: 'Change a silence (e.g. end it now)',
        params: idParam,
        body: patchSilenceBody,
        response: { 200: silenceSchema, ...errorResponses },
      },
    },
    async (request) => patchSilence(db, request.user, request.params.id, request.body),
  );
  app.delete<{ Params: { id: number } }>(
    '/api/v1/silences/:id',
    { schema: { tags: silenceTags, summary: 'Delete a silence', params: idParam, response: noContent } },
    async (request, reply) => {
      await removeSilence(db, request.user, request.params.id);
      return reply.status(204).send();
    },
  );

  const channelTags = ['notification channels'];
  app.get<{ Querystring: Page }>(
    '/api/v1/notification-channels',
    {
      schema: {
        tags: channelTags,
        summary: 'Channels of the pools the caller administers',
        querystring: listQuery,
        response: { 200: listOf(channelSchema), ...errorResponses },
      },
    },
    async (request) => listChannelsFor(db, request.user, request.query),
  );
  app.post<{ Body: ChannelBody }>(
    '/api/v1/notification-channels',
    {
      schema: {
        tags: channelTags,
        summary:
          'A webhook (JSON, signed) or e-mail channel: global (super-admin) or for the alerts of a pool and below',
        body: createChannelBody,
        response: { 201: channelSchema, ...errorResponses },
      },
    },
    async (request, reply) =>
      reply.status(201).send(await createChannel(db, request.user, request.body, targets)),
  );
  app.get<{ Params: { id: number } }>(
    '/api/v1/notification-channels/:id',
    {
      schema: {
        tags: channelTags,
        summary: 'A notification channel',
        params: idParam,
        response: { 200: channelSchema, ...errorResponses },
      },
    },
    async (request) => getChannel(db, request.user, request.params.id),
  );
  app.patch<{ Params: { id: number }; Body: Partial<ChannelBody> }>(
    '/api/v1/notification-channels/:id',
    {
      schema: {
        tags: channelTags,
        summary: 'Change a channel',
        params: idParam,
        body: patchChannelBody,
        response: { 200: channelSchema, ...errorResponses },
      },
    },
    async (request) => patchChannel(db, request.user, request.params.id, request.body, targets),
  );
  app.delete<{ Params: { id: number } }>(
    '/api/v1/notification-channels/:id',
    {
      schema: {
        tags: channelTags,
        summary: 'Delete a channel (its delivery history goes with it)',
        params: idParam,
        response: noContent,
      },
    },
    async (request, reply) => {
      await removeChannel(db, request.user, request.params.id);
      return reply.status(204).send();
    },
  );
}
