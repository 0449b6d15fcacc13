import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../app.js';
import { hostDeps } from '../hosts/hosts.routes.js';
import { createdSchema, errorResponses, idParam, listOf } from '../http/schemas.js';
import {
  createPoolBody,
  deletePoolQuery,
  patchPoolBody,
  poolListQuery,
  poolSchema,
} from './pools.schemas.js';
import {
  createPool,
  deletePool,
  getPool,
  listVisiblePools,
  type PoolSettingsInput,
  patchPool,
} from './pools.service.js';

const tags = ['pools'];

export function poolRoutes(app: FastifyInstance, deps: AppDeps): void {
  const { db, log } = deps;
  const { hostConnections } = hostDeps(app, deps);
  app.post<{ Body: PoolSettingsInput & { name: string; kind: 'hardware' | 'vm'; parentId?: number | null } }>(
    '/api/v1/pools',
    {
      schema: {
        tags,
        summary: 'Create a hardware pool (nests) or a VM pool (inside a hardware pool)',
        body: createPoolBody,
        response: { 201: { ...createdSchema, properties: poolSchema.properties }, ...errorResponses },
      },
    },
    async (request, reply) => reply.status(201).send(await createPool(db, request.user, request.body)),
  );

  app.get<{ Querystring: { limit: number; offset: number; parentId?: number; kind?: 'hardware' | 'vm' } }>(
    '/api/v1/pools',
    {
      schema: {
        tags,
        summary: 'The pools the caller may see',
        querystring: poolListQuery,
        response: { 200: listOf(poolSchema), ...errorResponses },
      },
    },
    async (request) => {
      const { limit, offset, ...filter } = request.query;
      return listVisiblePools(db, request.user, filter, { limit, offset });
    },
  );

  app.get<{ Params: { id: number } }>(
    '/api/v1/pools/:id',
    {
      schema: { tags, summary: 'A pool', params: idParam, response: { 200: poolSchema, ...errorResponses } },
    },
    async (request) => getPool(db, request.user, request.params.id),
  );

  app.patch<{ Params: { id: number }; Body: PoolSettingsInput & { parentId?: number | null } }>(
    '/api/v1/pools/:id',
    {
      schema: {
        tags,
        summary:
          "Change settings (a VM pool's CPU limit applies live to its running VMs), or move the pool to another hardware pool (parentId)",
        params: idParam,
        body: patchPoolBody,
        response: { 200: poolSchema, ...errorResponses },
      },
    },
    async (request) => patchPool(db, request.user, request.params.id, request.body, { hostConnections, log }),
  );

  app.delete<{ Params: { id: number }; Querystring: { moveContentsToParent: boolean } }>(
    '/api/v1/pools/:id',
    {
      schema: {
        tags,
        summary: 'Delete an empty pool, or move its contents to the parent first',
        params: idParam,
        querystring: deletePoolQuery,
        response: { 204: { type: 'null' }, ...errorResponses },
      },
    },
    async (request, reply) => {
      await deletePool(db, request.user, request.params.id, request.query.moveContentsToParent);
      return reply.status(204).send();
    },
  );
}
