import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../app.js';
import { hostDeps } from '../hosts/hosts.routes.js';
import { errorResponses, idParam, listOf, listQuery } from '../http/schemas.js';
import {
  createStoragePoolBody,
  createVolumeBody,
  refreshAnswer,
  refreshBody,
  storagePoolListQuery,
  storagePoolSchema,
  volumeParams,
  volumeSchema,
} from './storage.schemas.js';
import {
  createStoragePool,
  createVolume,
  deleteVolume,
  getStoragePool,
  listStoragePoolsFor,
  listVolumesFor,
  refreshStoragePool,
  removeStoragePool,
  type StoragePoolBody,
} from './storage.service.js';

const tags = ['storage'];

export async function storageRoutes(app: FastifyInstance, appDeps: AppDeps): Promise<void> {
  const deps = hostDeps(app, appDeps);

  app.post<{ Body: StoragePoolBody }>(
    '/api/v1/storage-pools',
    {
      schema: {
        tags,
        summary:
          'Add a storage pool to a hardware pool: define iSCSI/NFS/LVM on a host, or adopt a libvirt pool',
        body: createStoragePoolBody,
        response: { 201: storagePoolSchema, ...errorResponses },
      },
    },
    async (request, reply) =>
      reply.status(201).send(await createStoragePool(deps, request.user, request.body)),
  );

  app.get<{ Querystring: { limit: number; offset: number; poolId?: number } }>(
    '/api/v1/storage-pools',
    {
      schema: {
        tags,
        summary: 'Storage pools of the hardware pools the caller may view',
        querystring: storagePoolListQuery,
        response: { 200: listOf(storagePoolSchema), ...errorResponses },
      },
    },
    async (request) => listStoragePoolsFor(deps, request.user, request.query),
  );

  app.get<{ Params: { id: number } }>(
    '/api/v1/storage-pools/:id',
    {
      schema: { tags, params: idParam, response: { 200: storagePoolSchema, ...errorResponses } },
    },
    async (request) => getStoragePool(deps, request.user, request.params.id),
  );

  app.delete<{ Params: { id: number } }>(
    '/api/v1/storage-pools/:id',
    {
      schema: {
        tags,
        summary: 'Forget a storage pool (libvirt keeps it); refused while a volume is attached',
        params: idParam,
        response: { 204: { type: 'null' }, ...errorResponses },
      },
    },
    async (request, reply) => {
      await removeStoragePool(deps, request.user, request.params.id);
      return reply.status(204).send();
    },
  );

  app.get<{ Params: { id: number }; Querystring: { limit: number; offset: number } }>(
    '/api/v1/storage-pools/:id/volumes',
    {
      schema: {
        tags,
        summary: 'Volumes (LUNs, LVs, files) of a storage pool, with the VM each is attached to',
        params: idParam,
        querystring: listQuery,
        response: { 200: listOf(volumeSchema), ...errorResponses },
      },
    },
    async (request) => listVolumesFor(deps, request.user, request.params.id, request.query),
  );

  app.post<{ Params: { id: number }; Body: { name: string; sizeGiB: number } }>(
    '/api/v1/storage-pools/:id/volumes',
    {
      schema: {
        tags,
        summary: 'Create a volume (pools of types that support it: files, LVs; not iSCSI LUNs)',
        params: idParam,
        body: createVolumeBody,
        response: { 201: volumeSchema, ...errorResponses },
      },
    },
    async (request, reply) =>
      reply.status(201).send(await createVolume(deps, request.user, request.params.id, request.body)),
  );

  app.delete<{ Params: { id: number; volumeId: number } }>(
    '/api/v1/storage-pools/:id/volumes/:volumeId',
    {
      schema: {
        tags,
        summary: 'Delete a volume that no VM has attached',
        params: volumeParams,
        response: { 204: { type: 'null' }, ...errorResponses },
      },
    },
    async (request, reply) => {
      await deleteVolume(deps, request.user, request.params.id, request.params.volumeId);
      return reply.status(204).send();
    },
  );

  app.post<{ Params: { id: number }; Body: { hostId?: number } | null }>(
    '/api/v1/storage-pools/:id/refresh',
    {
      schema: {
        tags,
        summary: 'Re-read the volumes through the host (new LUNs, LVs made outside herd)',
        params: idParam,
        body: refreshBody,
        response: { 200: refreshAnswer, ...errorResponses },
      },
    },
    async (request) => refreshStoragePool(deps, request.user, request.params.id, request.body ?? {}),
  );
}
