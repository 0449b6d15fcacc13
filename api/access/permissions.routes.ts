import type { FastifyInstance } from 'fastify';
import type { Role } from '../../schema/index.js';
import type { AppDeps } from '../app.js';
import { errorResponses, idParam, listOf } from '../http/schemas.js';
import { poolUserParams } from '../quota/quota.schemas.js';
import { listPermissions, removePermission, setPermission } from './permissions.service.js';

const tags = ['permissions'];
const roleEnum = { type: 'string', enum: ['admin', 'user', 'monitor'] } as const;

const permissionSchema = {
  type: 'object',
  required: ['poolId', 'userId', 'role'],
  properties: {
    poolId: { type: 'integer', description: 'the pool the role was granted on' },
    userId: { type: 'integer' },
    username: { type: 'string' },
    role: roleEnum,
    source: { type: 'string', enum: ['manual', 'ldap'] },
    inherited: { type: 'boolean', description: 'granted on an ancestor, holding here too' },
    grantedAt: { type: 'string', format: 'date-time' },
  },
} as const;

export function permissionRoutes(app: FastifyInstance, { db }: AppDeps): void {
  app.put<{ Params: { id: number; userId: number }; Body: { role: Role } }>(
    '/api/v1/pools/:id/permissions/:userId',
    {
      schema: {
        tags,
        summary:
          'Grant a role on a pool; it holds in every pool below (admins of the parent pool, or the super-admin)',
        params: poolUserParams,
        body: {
          type: 'object',
          required: ['role'],
          additionalProperties: false,
          properties: { role: roleEnum },
        },
        response: { 200: permissionSchema, ...errorResponses },
      },
    },
    async (request) =>
      setPermission(db, request.user, request.params.id, request.params.userId, request.body.role),
  );

  app.delete<{ Params: { id: number; userId: number } }>(
    '/api/v1/pools/:id/permissions/:userId',
    {
      schema: {
        tags,
        summary: 'Revoke a role granted on this pool',
        params: poolUserParams,
        response: { 204: { type: 'null' }, ...errorResponses },
      },
    },
    async (request, reply) => {
      await removePermission(db, request.user, request.params.id, request.params.userId);
      return reply.status(204).send();
    },
  );

  app.get<{ Params: { id: number } }>(
    '/api/v1/pools/:id/permissions',
    {
      schema: {
        tags,
        summary: 'The roles that hold in a pool: granted on it or inherited from its ancestors',
        params: idParam,
        response: { 200: listOf(permissionSchema), ...errorResponses },
      },
    },
    async (request) => listPermissions(db, request.user, request.params.id),
  );
}
