import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../app.js';
import { errorResponses, listOf } from '../http/schemas.js';
import type { AuditFilter } from './audit.repository.js';
import { listAuditLog } from './audit.service.js';

const entrySchema = {
  type: 'object',
  required: ['id', 'at', 'action', 'entityType'],
  properties: {
    id: { type: 'integer' },
    at: { type: 'string', format: 'date-time' },
    userId: { type: ['integer', 'null'], description: 'who; null: herd itself' },
    username: { type: ['string', 'null'] },
    action: { type: 'string' },
    entityType: { type: 'string' },
    entityId: { type: ['string', 'null'] },
    before: { description: 'the entity before the change (null when created)' },
    after: { description: 'the entity after the change (null when deleted)' },
  },
} as const;

export function auditRoutes(app: FastifyInstance, { db }: AppDeps): void {
  app.get<{ Querystring: AuditFilter }>(
    '/api/v1/audit',
    {
      schema: {
        tags: ['audit'],
        summary: 'The audit log of every change, newest first (super-admin)',
        querystring: {
          type: 'object',
          properties: {
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
            offset: { type: 'integer', minimum: 0, default: 0 },
            userId: { type: 'integer', minimum: 1 },
            entityType: { type: 'string', maxLength: 100 },
            entityId: { type: 'string', maxLength: 100 },
            action: { type: 'string', maxLength: 100 },
          },
        },
        response: { 200: listOf(entrySchema), ...errorResponses },
      },
    },
    async (request) => listAuditLog(db, request.user, request.query),
  );
}
