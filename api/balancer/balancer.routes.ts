import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../app.js';
import { hostDeps } from '../hosts/hosts.routes.js';
import { errorResponses, idParam } from '../http/schemas.js';
import { applyRecommendation, type BalancerDeps, getBalance } from './balancer.service.js';

const tags = ['pools'];

const recommendation = {
  type: 'object',
  properties: {
    vmId: { type: 'integer' },
    fromHostId: { type: 'integer' },
    toHostId: { type: 'integer' },
    reason: { type: 'string' },
    kind: {
      type: 'string',
      enum: ['relieve', 'empty'],
      description: 'relieve a hot host, or empty one (pack)',
    },
    imbalanceBefore: { type: 'number' },
    imbalanceAfter: { type: 'number' },
  },
} as const;

const balanceAnswer = {
  type: 'object',
  properties: {
    poolId: { type: 'integer' },
    mode: { type: 'string', enum: ['off', 'recommend', 'automatic'] },
    policy: { type: 'string', enum: ['balance', 'pack'] },
    imbalance: { type: 'number', description: "the coefficient of variation of the hosts' weighted load" },
    imbalanceAfter: { type: 'number', description: 'once the recommended moves are made' },
    recommendations: { type: 'array', items: recommendation },
    emptyHosts: {
      type: 'array',
      description: 'pack: hosts without VMs once the moves are made ("empty, can power off")',
      items: { type: 'object', properties: { hostId: { type: 'integer' }, reason: { type: 'string' } } },
    },
    notes: {
      type: 'array',
      items: { type: 'string' },
      description: 'why hot or cold hosts got no move (yet)',
    },
    migrationsInFlight: { type: 'integer' },
  },
} as const;

/** The balancer of a hardware pool (docs/balancer.md): its plan now, and applying a recommended move. */
export function balancerRoutes(app: FastifyInstance, appDeps: AppDeps): void {
  const deps: BalancerDeps = {
    db: appDeps.db,
    liveView: appDeps.liveView,
    log: appDeps.log,
    hostConnections: hostDeps(app, appDeps).hostConnections,
  };
  app.get<{ Params: { id: number } }>(
    '/api/v1/pools/:id/balance',
    {
      schema: {
        tags,
        summary:
          "The balancer's plan for a hardware pool now, each move with its reason (mode off: the dry run); pool admins",
        params: idParam,
        response: { 200: balanceAnswer, ...errorResponses },
      },
    },
    async (request) => getBalance(deps, request.user, request.params.id),
  );

  app.post<{ Params: { id: number }; Body: { vmId: number } }>(
    '/api/v1/pools/:id/balance/apply',
    {
      schema: {
        tags,
        summary:
          'Mode recommend: carry out the move recommended now for the VM, through its migrate task (202); pool admins',
        params: idParam,
        body: {
          type: 'object',
          required: ['vmId'],
          additionalProperties: false,
          properties: { vmId: { type: 'integer', minimum: 1 } },
        },
        response: {
          202: {
            type: 'object',
            required: ['taskId'],
            properties: { taskId: { type: 'integer' }, reason: { type: 'string' } },
          },
          ...errorResponses,
        },
      },
    },
    async (request, reply) =>
      reply
        .status(202)
        .send(await applyRecommendation(deps, request.user, request.params.id, request.body.vmId)),
  );
}
