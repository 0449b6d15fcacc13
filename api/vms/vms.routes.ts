import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../app.js';
import { hostDeps } from '../hosts/hosts.routes.js';
import { createdSchema, errorResponses, idParam, listOf } from '../http/schemas.js';
import { requestVmAction, type VmActionDeps, type VmActionRequest } from './vm-actions.service.js';
import { configureVmClaims } from './vm-claim.repository.js';
import {
  actionBody,
  createVmBody,
  patchVmBody,
  placementAnswer,
  taskIdAnswer,
  vmListQuery,
  vmSchema,
} from './vms.schemas.js';
import {
  type CreateVmInput,
  createVm,
  deleteVm,
  getVm,
  listVisibleVms,
  type PatchVmInput,
  patchVm,
  vmPlacement,
} from './vms.service.js';

const tags = ['vms'];

export async function vmRoutes(app: FastifyInstance, appDeps: AppDeps): Promise<void> {
  const deps: VmActionDeps = {
    db: appDeps.db,
    liveView: appDeps.liveView,
    log: appDeps.log,
    hostConnections: hostDeps(app, appDeps).hostConnections,
  };
  configureVmClaims(appDeps.db, { log: appDeps.log, hostCacheMs: appDeps.config.hosts.placementCacheMs });

  app.post<{ Body: CreateVmInput }>(
    '/api/v1/vms',
    {
      schema: {
        tags,
        summary:
          'Create a VM (defined on no host until it starts); storage counts against the quota from now',
        body: createVmBody,
        response: { 201: createdSchema, ...errorResponses },
      },
    },
    async (request, reply) => reply.status(201).send(await createVm(deps, request.user, request.body)),
  );

  app.get<{
    Querystring: { poolId?: number; hostId?: number; state?: string; limit: number; offset: number };
  }>(
    '/api/v1/vms',
    {
      schema: {
        tags,
        summary: 'The VMs the caller sees',
        querystring: vmListQuery,
        response: { 200: listOf(vmSchema), ...errorResponses },
      },
    },
    async (request) => listVisibleVms(deps, request.user, request.query),
  );

  app.get<{ Params: { id: number } }>(
    '/api/v1/vms/:id',
    { schema: { tags, summary: 'One VM', params: idParam, response: { 200: vmSchema, ...errorResponses } } },
    async (request) => getVm(deps, request.user, request.params.id),
  );

  app.patch<{ Params: { id: number }; Body: PatchVmInput }>(
    '/api/v1/vms/:id',
    {
      schema: {
        tags,
        summary:
          'Rename; resize or change volumes while stopped; turn install boot on or off; set the CPU limit (live when running)',
        params: idParam,
        body: patchVmBody,
        response: { 200: vmSchema, ...errorResponses },
      },
    },
    async (request) => patchVm(deps, request.user, request.params.id, request.body),
  );

  app.delete<{ Params: { id: number } }>(
    '/api/v1/vms/:id',
    {
      schema: {
        tags,
        summary:
          'Delete a stopped VM: at once (204) when on no host, else through a task that undefines it (202)',
        params: idParam,
        response: { 202: taskIdAnswer, 204: { type: 'null' }, ...errorResponses },
      },
    },
    async (request, reply) => {
      const out = await deleteVm(deps, request.user, request.params.id);
      return 'taskId' in out ? reply.status(202).send(out) : reply.status(204).send();
    },
  );

  app.post<{ Params: { id: number }; Body: VmActionRequest }>(
    '/api/v1/vms/:id/actions',
    {
      schema: {
        tags,
        summary:
          'Ask for an action: 202 with its task; 409 from the wrong state, over quota, or with no host',
        params: idParam,
        body: actionBody,
        response: { 202: taskIdAnswer, ...errorResponses },
      },
    },
    async (request, reply) =>
      reply.status(202).send(await requestVmAction(deps, request.user, request.params.id, request.body)),
  );

  app.get<{ Params: { id: number } }>(
    '/api/v1/vms/:id/placement',
    {
      schema: {
        tags,
        summary:
          'Explain placement: the last decision and what it would be now, every candidate host with its score or why it was filtered',
        params: idParam,
        response: { 200: placementAnswer, ...errorResponses },
      },
    },
    async (request) => vmPlacement(deps, request.user, request.params.id),
  );
}
