import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../app.js';
import { errorResponses, idParam, listOf } from '../http/schemas.js';
import { eventListQuery, eventSchema, subjectEventQuery } from './events.schemas.js';
import { type EventQuery, hostEvents, listVisibleEvents, vmEvents } from './events.service.js';

const tags = ['events'];
const answers = { 200: listOf(eventSchema), ...errorResponses };

/** collectd notifications (the `events` table), not to be confused with alert notifications. */
export function eventRoutes(app: FastifyInstance, { db }: AppDeps): void {
  app.get<{ Querystring: EventQuery }>(
    '/api/v1/events',
    {
      schema: {
        tags,
        summary: 'collectd notifications of the hosts and VMs the caller may see, newest first',
        querystring: eventListQuery,
        response: answers,
      },
    },
    async (request) => listVisibleEvents(db, request.user, request.query),
  );

  app.get<{ Params: { id: number }; Querystring: EventQuery }>(
    '/api/v1/hosts/:id/events',
    {
      schema: {
        tags,
        summary:
          "A host's collectd notifications (its guests' among them, those the caller sees), newest first",
        params: idParam,
        querystring: subjectEventQuery,
        response: answers,
      },
    },
    async (request) => hostEvents(db, request.user, request.params.id, request.query),
  );

  app.get<{ Params: { id: number }; Querystring: EventQuery }>(
    '/api/v1/vms/:id/events',
    {
      schema: {
        tags,
        summary: "A VM's collectd notifications, newest first",
        params: idParam,
        querystring: subjectEventQuery,
        response: answers,
      },
    },
    async (request) => vmEvents(db, request.user, request.params.id, request.query),
  );
}
