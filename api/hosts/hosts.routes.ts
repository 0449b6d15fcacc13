import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../app.js';
import { errorResponses, idParam, listOf } from '../http/schemas.js';
import { HostConnections } from './driver/index.js';
import { evacuateHost } from './evacuate.js';
import {
  addHostAnswer,
  addHostBody,
  evacuateAnswer,
  hostListQuery,
  hostSchema,
  patchHostBody,
  registerAnswer,
  registerBody,
} from './hosts.schemas.js';
import {
  addHost,
  getHost,
  type HostDeps,
  type HostPatchBody,
  listHostsFor,
  patchHost,
  registerHost,
  removeHost,
} from './hosts.service.js';

const tags = ['hosts'];

/**
 * The host connections of the process: the one in `deps` when the server made one (shared with the worker
 * and the host monitor), else one of the app's own, closed with it.
 */
export function hostDeps(app: FastifyInstance, deps: AppDeps): HostDeps {
  if (deps.hostConnections) return { ...deps, hostConnections: deps.hostConnections };
  const hostConnections = new HostConnections(deps.log);
  deps.hostConnections = hostConnections;
  app.addHook('onClose', () => hostConnections.closeAll());
  return { ...deps, hostConnections };
}

export async function hostRoutes(app: FastifyInstance, appDeps: AppDeps): Promise<void> {
  const deps = hostDeps(app, appDeps);

  app.post<{ Body: { uri: string; poolId: number } }>(
    '/api/v1/hosts',
    {
      schema: {
        tags,
        summary: 'Add the libvirt host at `uri` to a hardware pool (enabled); herd reads its inventory',
        body: addHostBody,
        response: { 201: addHostAnswer, ...errorResponses },
      },
    },
    async (request, reply) => reply.status(201).send(await addHost(deps, request.user, request.body)),
  );

  app.post<{
    Body: {
      uri: string;
      hostname: string;
      uuid?: string;
      arch?: string;
      cpus: number;
      cores?: number;
      mhz?: number;
      memoryMiB: number;
      nics?: Array<{ name: string; mac?: string }>;
    };
  }>(
    '/api/v1/hosts/register',
    {
      schema: {
        tags,
        summary:
          'A host announces itself (collectd-plugins/herd-register): new hosts land disabled in the default pool',
        description:
          'Needs an API token of a user who may modify the default hardware pool. A known URI only refreshes the inventory.',
        body: registerBody,
        response: { 200: registerAnswer, 201: registerAnswer, ...errorResponses },
      },
    },
    async (request, reply) => {
      const b = request.body;
      const { host, created } = await registerHost(deps, request.user, {
        uri: b.uri,
        inventory: {
          hostname: b.hostname,
          uuid: b.uuid ?? null,
          arch: b.arch ?? null,
          cpus: b.cpus,
          cores: b.cores ?? null,
          mhz: b.mhz ?? null,
          memoryMiB: b.memoryMiB,
          nics: b.nics ?? [],
        },
      });
      return reply
        .status(created ? 201 : 200)
        .send({ id: host.id, created, enabled: host.enabled, poolId: host.poolId });
    },
  );

  app.get<{ Querystring: { limit: number; offset: number; poolId?: number } }>(
    '/api/v1/hosts',
    {
      schema: {
        tags,
        summary: 'Hosts in the pools the caller may view',
        querystring: hostListQuery,
        response: { 200: listOf(hostSchema), ...errorResponses },
      },
    },
    async (request) => listHostsFor(deps, request.user, request.query),
  );

  app.get<{ Params: { id: number } }>(
    '/api/v1/hosts/:id',
    {
      schema: {
        tags,
        summary: 'One host: state, enabled, last seen, live metrics, VMs on it',
        params: idParam,
        response: { 200: hostSchema, ...errorResponses },
      },
    },
    async (request) => getHost(deps, request.user, request.params.id),
  );

  app.patch<{ Params: { id: number }; Body: HostPatchBody }>(
    '/api/v1/hosts/:id',
    {
      schema: {
        tags,
        summary: 'Enable/disable, move to another hardware pool, reserved capacity and allocation ratios',
        params: idParam,
        body: patchHostBody,
        response: { 200: hostSchema, ...errorResponses },
      },
    },
    async (request) => patchHost(deps, request.user, request.params.id, request.body),
  );

  app.delete<{ Params: { id: number } }>(
    '/api/v1/hosts/:id',
    {
      schema: {
        tags,
        summary: 'Remove a host without VMs (409 while it has any)',
        params: idParam,
        response: { 204: { type: 'null' }, ...errorResponses },
      },
    },
    async (request, reply) => {
      await removeHost(deps, request.user, request.params.id);
      return reply.status(204).send();
    },
  );

  app.post<{ Params: { id: number } }>(
    '/api/v1/hosts/:id/evacuate',
    {
      schema: {
        tags,
        summary: 'Disable the host and migrate every VM off it (one migrate task per VM)',
        params: idParam,
        response: { 202: evacuateAnswer, ...errorResponses },
      },
    },
    async (request, reply) =>
      reply.status(202).send(await evacuateHost(deps, request.user, request.params.id)),
  );
}
