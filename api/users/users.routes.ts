import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../app.js';
import { errorResponses, errorSchema, idParam, listOf, listQuery } from '../http/schemas.js';
import { createUserBody, directoryUserSchema, patchUserBody, userSchema } from './users.schemas.js';
import {
  type CreateUserInput,
  createUser,
  deleteUser,
  directoryUsers,
  getUser,
  listVisibleUsers,
  type PatchUserInput,
  patchUser,
} from './users.service.js';

const tags = ['users'];

export function userRoutes(app: FastifyInstance, { db, config }: AppDeps): void {
  app.post<{ Body: CreateUserInput }>(
    '/api/v1/users',
    {
      schema: {
        tags,
        summary: 'Add a local or directory (source: ldap) user (super-admin)',
        body: createUserBody,
        response: { 201: userSchema, 503: errorSchema, ...errorResponses },
      },
    },
    async (request, reply) =>
      reply.status(201).send(await createUser(db, config, request.user, request.body)),
  );

  app.get<{ Querystring: { limit: number; offset: number } }>(
    '/api/v1/users',
    {
      schema: {
        tags,
        summary: 'Users: all of them for pool admins and the super-admin, else only the caller',
        querystring: listQuery,
        response: { 200: listOf(userSchema), ...errorResponses },
      },
    },
    async (request) => listVisibleUsers(db, request.user, request.query),
  );

  app.get<{ Params: { id: number } }>(
    '/api/v1/users/:id',
    {
      schema: { tags, summary: 'A user', params: idParam, response: { 200: userSchema, ...errorResponses } },
    },
    async (request) => getUser(db, request.user, request.params.id),
  );

  app.patch<{ Params: { id: number }; Body: PatchUserInput }>(
    '/api/v1/users/:id',
    {
      schema: {
        tags,
        summary: 'Change a user (yourself, or anyone as super-admin)',
        params: idParam,
        body: patchUserBody,
        response: { 200: userSchema, ...errorResponses },
      },
    },
    async (request) => patchUser(db, request.user, request.params.id, request.body),
  );

  app.delete<{ Params: { id: number } }>(
    '/api/v1/users/:id',
    {
      schema: {
        tags,
        summary: 'Delete a user who owns no VM (super-admin)',
        params: idParam,
        response: { 204: { type: 'null' }, ...errorResponses },
      },
    },
    async (request, reply) => {
      await deleteUser(db, request.user, request.params.id);
      return reply.status(204).send();
    },
  );

  app.get(
    '/api/v1/directory/users',
    {
      schema: {
        tags,
        summary: 'Users of the LDAP directory, to add with POST /api/v1/users {source: "ldap"} (super-admin)',
        response: { 200: listOf(directoryUserSchema), 503: errorSchema, ...errorResponses },
      },
    },
    async (request) => directoryUsers(db, config, request.user),
  );
}
