import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../app.js';
import { errorResponses, idParam, listOf, listQuery } from '../http/schemas.js';
import type { EntityType } from './smart-pools.repository.js';
import {
  addSmartPoolMember,
  createSmartPool,
  deleteOwnSmartPool,
  getSmartPool,
  listOwnSmartPools,
  removeSmartPoolMember,
  renameOwnSmartPool,
  smartPoolMembers,
} from './smart-pools.service.js';

const tags = ['smart pools'];
const nameBody = {
  type: 'object',
  required: ['name'],
  additionalProperties: false,
  properties: { name: { type: 'string', minLength: 1, maxLength: 200, pattern: '\\S' } },
} as const;
const memberSchema = {
  type: 'object',
  required: ['entityType', 'entityId'],
  properties: {
    entityType: { type: 'string', enum: ['pool', 'host', 'storage_pool', 'vm'] },
    entityId: { type: 'integer' },
    name: { type: 'string' },
  },
} as const;
const smartPoolSchema = {
  type: 'object',
  required: ['id', 'name', 'ownerId'],
  properties: {
    id: { type: 'integer' },
    name: { type: 'string' },
    ownerId: { type: 'integer' },
    createdAt: { type: 'string', format: 'date-time' },
    members: { type: 'array', items: memberSchema },
  },
} as const;
const memberParams = {
  type: 'object',
  required: ['id', 'entityType', 'entityId'],
  properties: {
    id: { type: 'integer', minimum: 1 },
    entityType: { type: 'string', enum: ['pool', 'host', 'storage_pool', 'vm'] },
    entityId: { type: 'integer', minimum: 1 },
  },
} as const;
const noContent = { 204: { type: 'null' }, ...errorResponses } as const;
type MemberParams = { id: number; entityType: EntityType; entityId: number };

export function smartPoolRoutes(app: FastifyInstance, { db }: AppDeps): void {
  app.post<{ Body: { name: string } }>(
    '/api/v1/smart-pools',
    {
      schema: {
        tags,
        summary: 'Create a smart pool of your own',
        body: nameBody,
        response: { 201: smartPoolSchema, ...errorResponses },
      },
    },
    async (request, reply) =>
      reply.status(201).send(await createSmartPool(db, request.user, request.body.name)),
  );

  app.get<{ Querystring: { limit: number; offset: number } }>(
    '/api/v1/smart-pools',
    {
      schema: {
        tags,
        summary: 'Your smart pools',
        querystring: listQuery,
        response: { 200: listOf(smartPoolSchema), ...errorResponses },
      },
    },
    async (request) => listOwnSmartPools(db, request.user, request.query),
  );

  app.get<{ Params: { id: number } }>(
    '/api/v1/smart-pools/:id',
    {
      schema: {
        tags,
        summary: 'A smart pool with its members',
        params: idParam,
        response: { 200: smartPoolSchema, ...errorResponses },
      },
    },
    async (request) => getSmartPool(db, request.user, request.params.id),
  );

  app.patch<{ Params: { id: number }; Body: { name: string } }>(
    '/api/v1/smart-pools/:id',
    {
      schema: {
        tags,
        summary: 'Rename a smart pool',
        params: idParam,
        body: nameBody,
        response: { 200: smartPoolSchema, ...errorResponses },
      },
    },
    async (request) => renameOwnSmartPool(db, request.user, request.params.id, request.body.name),
  );

  app.delete<{ Params: { id: number } }>(
    '/api/v1/smart-pools/:id',
    { schema: { tags, summary: 'Delete a smart pool', params: idParam, response: noContent } },
    async (request, reply) => {
      await deleteOwnSmartPool(db, request.user, request.params.id);
      return reply.status(204).send();
    },
  );

  app.get<{ Params: { id: number } }>(
    '/api/v1/smart-pools/:id/members',
    {
      schema: {
        tags,
        summary: 'The members you may still see',
        params: idParam,
        response: { 200: listOf(memberSchema), ...errorResponses },
      },
    },
    async (request) => smartPoolMembers(db, request.user, request.params.id),
  );

  app.put<{ Params: MemberParams }>(
    '/api/v1/smart-pools/:id/members/:entityType/:entityId',
    {
      schema: {
        tags,
        summary: 'Add a pool, host, storage pool or VM you may see',
        params: memberParams,
        response: noContent,
      },
    },
    async (request, reply) => {
      const { id, entityType, entityId } = request.params;
      await addSmartPoolMember(db, request.user, id, entityType, entityId);
      return reply.status(204).send();
    },
  );

  app.delete<{ Params: MemberParams }>(
    '/api/v1/smart-pools/:id/members/:entityType/:entityId',
    { schema: { tags, summary: 'Remove a member', params: memberParams, response: noContent } },
    async (request, reply) => {
      const { id, entityType, entityId } = request.params;
      await removeSmartPoolMember(db, request.user, id, entityType, entityId);
      return reply.status(204).send();
    },
  );
}
