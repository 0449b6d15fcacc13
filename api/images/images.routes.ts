import type { FastifyInstance } from 'fastify';
import type { AppDeps } from '../app.js';
import { LoginFailures } from '../auth/login-failures.js';
import { HttpError } from '../http/errors.js';
import { errorResponses, errorSchema, idParam, listOf, listQuery } from '../http/schemas.js';
import {
  createImage,
  getImage,
  type ImageBody,
  imageFile,
  listImagesFor,
  markInstalled,
  markInstalledByToken,
  normalizeMac,
  pxeScript,
  removeImage,
} from './images.service.js';

const tags = ['images'];
/** `GET /pxe/boot` misses (a MAC of no VM starting or running, or no MAC) per client address per minute. */
export const PXE_MISSES_PER_ADDRESS_PER_MINUTE = 30;
/** A URL iPXE fetches: no whitespace (a script line), http(s) or tftp. */
const bootUrl = { type: 'string', maxLength: 2048, pattern: '^(https?|tftp)://[^\\s]+$' } as const;
/** A kernel or initrd: a URL as above, or a file on herd's machine that herd serves (super-admin only). */
const bootFile = {
  type: 'string',
  maxLength: 2048,
  pattern: '^((https?|tftp)://[^\\s]+|/[^\\s]*)$',
  description:
    "a URL the guest's iPXE fetches, or the absolute path of a file on herd's machine (super-admin only), served at /pxe/images/:id/kernel|initrd",
} as const;

const imageSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    name: { type: 'string' },
    kind: { type: 'string', enum: ['kernel', 'ipxe', 'iso'] },
    kernel: { type: ['string', 'null'] },
    initrd: { type: ['string', 'null'] },
    cmdline: { type: ['string', 'null'] },
    ipxeUrl: { type: ['string', 'null'] },
    isoVolumeId: { type: ['integer', 'null'] },
    createdAt: { type: 'string' },
    createdBy: {
      type: ['integer', 'null'],
      description: 'the user who added it (who may remove it, besides the super-admin)',
    },
  },
} as const;

const imageBody = {
  type: 'object',
  required: ['name'],
  additionalProperties: false,
  description: 'One of: {name, kernel, initrd?, cmdline?} | {name, ipxeUrl} | {name, isoVolumeId}',
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 128, pattern: '^[^\\r\\n]+$' },
    kernel: bootFile,
    initrd: bootFile,
    cmdline: {
      type: 'string',
      maxLength: 4096,
      pattern: '^[^\\r\\n]*$',
      description:
        "{{name}}, {{uuid}} and {{mac}} are replaced with the VM's; {{installedUrl}} with the VM's own URL that marks it installed (POST)",
    },
    ipxeUrl: bootUrl,
    isoVolumeId: { type: 'integer', minimum: 1 },
  },
} as const;

export async function imageRoutes(app: FastifyInstance, deps: AppDeps): Promise<void> {
  app.get<{ Querystring: { limit: number; offset: number } }>(
    '/api/v1/images',
    {
      schema: {
        tags,
        summary: 'The install image catalogue (network installs and ISO images)',
        querystring: listQuery,
        response: { 200: listOf(imageSchema), ...errorResponses },
      },
    },
    async (request) => listImagesFor(deps, request.query),
  );

  app.post<{ Body: ImageBody }>(
    '/api/v1/images',
    {
      schema: {
        tags,
        summary: 'Add an install image (pool admins)',
        body: imageBody,
        response: { 201: imageSchema, ...errorResponses },
      },
    },
    async (request, reply) => reply.status(201).send(await createImage(deps, request.user, request.body)),
  );

  app.get<{ Params: { id: number } }>(
    '/api/v1/images/:id',
    { schema: { tags, params: idParam, response: { 200: imageSchema, ...errorResponses } } },
    async (request) => getImage(deps, request.params.id),
  );

  app.delete<{ Params: { id: number } }>(
    '/api/v1/images/:id',
    {
      schema: {
        tags,
        summary: 'Remove an image (VMs created with it keep booting from disk)',
        params: idParam,
        response: { 204: { type: 'null' }, ...errorResponses },
      },
    },
    async (request, reply) => {
      await removeImage(deps, request.user, request.params.id);
      return reply.status(204).send();
    },
  );

  app.post<{ Params: { id: number } }>(
    '/api/v1/vms/:id/installed',
    {
      schema: {
        tags: ['vms', 'images'],
        summary: 'The VM is installed: from now on it boots from its disk (the iPXE script answers `exit`)',
        params: idParam,
        response: {
          200: { type: 'object', properties: { id: { type: 'integer' }, bootNetwork: { type: 'boolean' } } },
          ...errorResponses,
        },
      },
    },
    async (request) => markInstalled(deps, request.user, request.params.id),
  );

  for (const part of ['kernel', 'initrd'] as const) {
    app.get<{ Params: { id: number } }>(
      `/pxe/images/:id/${part}`,
      {
        schema: {
          tags: ['pxe'],
          summary: `The ${part} of an install image that is a file on herd's machine (asked by the guest's iPXE; no authentication)`,
          security: [],
          params: idParam,
          response: { 200: { type: 'string', format: 'binary' }, 400: errorSchema, 404: errorSchema },
        },
      },
      async (request, reply) => {
        const { stream, size } = await imageFile(deps, request.params.id, part);
        return reply
          .header('content-type', 'application/octet-stream')
          .header('content-length', size)
          .header('cache-control', 'no-store')
          .send(stream);
      },
    );
  }

  // The guest's wget posts an empty form (`--post-data=`): whatever it sends is accepted and ignored, on this
  // route only (its own plugin scope).
  await app.register(async (scope) => {
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: 4096 }, (_request, _body, done) =>
      done(null, undefined),
    );
    scope.post<{ Params: { token: string } }>(
      '/pxe/installed/:token',
      {
        schema: {
          tags: ['pxe'],
          summary:
            "A network install is done (the guest POSTs the image command line's {{installedUrl}}): the VM boots from its disk from now on",
          security: [],
          params: {
            type: 'object',
            required: ['token'],
            properties: { token: { type: 'string', minLength: 1, maxLength: 64 } },
          },
          response: {
            200: {
              type: 'object',
              properties: { id: { type: 'integer' }, bootNetwork: { type: 'boolean' } },
            },
            400: errorSchema,
            404: errorSchema,
          },
        },
      },
      async (request) => markInstalledByToken(deps, request.params.token),
    );
  });

  // Only misses count (the same fixed windows as failed logins): a host whose guests boot many times is never
  // held up, while guessing MACs to find one being installed is.
  const pxeMisses = new LoginFailures(PXE_MISSES_PER_ADDRESS_PER_MINUTE, 60_000);
  const miss = (address: string, error: HttpError) => {
    pxeMisses.record(address);
    return error;
  };
  app.get<{ Querystring: { mac: string } }>(
    '/pxe/boot',
    {
      schema: {
        tags: ['pxe'],
        summary: "iPXE script for the VM with this MAC (asked by the guest's firmware; no authentication)",
        description:
          'Answered only while the VM owning the MAC is starting or running; any other MAC is a 404, and too many ' +
          'of those from one address a 429 (docs/pxe.md).',
        security: [],
        querystring: {
          type: 'object',
          required: ['mac'],
          properties: { mac: { type: 'string', maxLength: 32 } },
        },
        response: { 200: { type: 'string' }, 400: errorSchema, 404: errorSchema, 429: errorSchema },
      },
      // Before validation, so that malformed requests count and are held back too.
      onRequest: async (request, reply) => {
        const wait = pxeMisses.blockedFor(request.ip);
        if (wait <= 0) return;
        reply.header('retry-after', Math.ceil(wait / 1000));
        throw new HttpError(
          429,
          'rate_limited',
          `too many unknown MACs from this address: retry in ${Math.ceil(wait / 1000)} s`,
        );
      },
      preValidation: async (request) => {
        if (typeof (request.query as { mac?: unknown }).mac !== 'string')
          throw miss(
            request.ip,
            new HttpError(400, 'bad_request', 'querystring.mac: required', { field: 'mac' }),
          );
      },
    },
    async (request, reply) => {
      const mac = normalizeMac(request.query.mac);
      if (!mac)
        throw miss(
          request.ip,
          new HttpError(400, 'bad_request', 'querystring.mac: not a MAC address', { field: 'mac' }),
        );
      const script = await pxeScript(deps, mac);
      if (script === null)
        throw miss(request.ip, new HttpError(404, 'not_found', 'no VM with this MAC is booting'));
      reply.header('content-type', 'text/plain; charset=utf-8').header('cache-control', 'no-store');
      return script;
    },
  );
}
