import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../app.js';
import { errorResponses, idParam, listOf } from '../http/schemas.js';
import { poolUserParams, quotaBody, quotaSchema, reconcileSchema, usageSchema } from './quota.schemas.js';
import type { Resources } from './quota.service.js';
import { listQuotas, poolUsage, reconcile, removeQuota, setQuota } from './quota-admin.service.js';

const tags = ['quotas'];
const noContent = { 204: { type: 'null' }, ...errorResponses } as const;

export function quotaRoutes(app: FastifyInstance, { db }: AppDeps): void {
  app.put<{ Params: { id: number; userId: number }; Body: Partial<Resources> }>(
    '/api/v1/pools/:id/quotas/:userId',
    {
      schema: {
        tags,
        summary: "Set a user's quota on a pool (a field left out is unlimited)",
        params: poolUserParams,
        body: quotaBody,
        response: { 200: quotaSchema, ...errorResponses },
      },
    },
    async (request) => setQuota(db, request.user, request.params.id, request.params.userId, request.body),
  );

  app.delete<{ Params: { id: number; userId: number } }>(
    '/api/v1/pools/:id/quotas/:userId',
    {
      schema: {
        tags,
        summary: "Remove a user's quota on a pool",
        params: poolUserParams,
        response: noContent,
      },
    },
    async (request, reply) => {
      await removeQuota(db, request.user, request.params.id, request.params.userId);
      return reply.status(204).send();
    },
  );

  app.put<{ Params: { id: number }; Body: Partial<Resources> }>(
    '/api/v1/pools/:id/quota',
    {
      schema: {
        tags,
        summary: "Set the pool's total quota, over all users (a field left out is unlimited)",
        params: idParam,
        body: quotaBody,
        response: { 200: quotaSchema, ...errorResponses },
      },
    },
    async (request) => setQuota(db, request.user, request.params.id, null, request.body),
  );

  app.delete<{ Params: { id: number } }>(
    '/api/v1/pools/:id/quota',
    { schema: { tags, summary: "Remove the pool's total quota", params: idParam, response: noContent } },
    async (request, reply) => {
      await removeQuota(db, request.user, request.params.id, null);
      return reply.status(204).send();
    },
  );

  app.get<{ Params: { id: number } }>(
    '/api/v1/pools/:id/quotas',
    {
      schema: {
        tags,
        summary: 'The quotas set on the pool itself (userId null: the pool total)',
        params: idParam,
        response: { 200: listOf(quotaSchema), ...errorResponses },
      },
    },
    async (request) => listQuotas(db, request.user, request.params.id),
  );

  app.get<{ Params: { id: number } }>(
    '/api/v1/pools/:id/usage',
    {
      schema: {
        tags,
        summary: 'Used and limit of each quota resource in the pool and below, per user and in total',
        params: idParam,
        response: { 200: usageSchema, ...errorResponses },
      },
    },
    async (request) => poolUsage(db, request.user, request.params.id),
  );

  app.get(
    '/api/v1/quota/reconcile',
    {
      schema: {
        tags,
        summary: 'Recount all usage from scratch and list differences with the usage endpoint (super-admin)',
        response: { 200: reconcileSchema, ...errorResponses },
      },
    },
    async (request) => reconcile(db, request.user),
  );
}
