import type { IncomingMessage } from 'node:http';
import { ServerResponse } from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { type WebSocket, WebSocketServer } from 'ws';
import type { AppDeps } from '../app.js';
import { HttpError } from '../http/errors.js';
import { isSameOrigin } from '../http/same-origin.js';
import { errorResponses, errorSchema, idParam } from '../http/schemas.js';
import { consoleTarget, type VncTarget } from './vm-console.service.js';

/** An upgrade request on its way through Fastify's router: the raw socket it arrived on. */
const UPGRADE = Symbol('herd.upgrade');
type UpgradingRequest = IncomingMessage & { [UPGRADE]?: { socket: Duplex; head: Buffer } };

const CONSOLE_PATH = /^\/api\/v1\/vms\/[^/?]+\/console(\?|$)/;

/**
 * `GET /api/v1/vms/:id/console` upgraded to a WebSocket: the VM's VNC display (RFB) carried in binary frames,
 * for the dashboard's noVNC client. The upgrade goes through Fastify's router like any request — the auth hook
 * (bearer token or session cookie), the schemas, the access check — and only then is the socket taken over.
 * A cookie is sent by the browser whichever page opens the socket, so a request whose Origin is another site is
 * refused (403). Without an upgrade the route answers 426 once every check passed: a page may ask first.
 */
export async function vmConsoleRoutes(app: FastifyInstance, deps: AppDeps): Promise<void> {
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: 1024 * 1024,
    handleProtocols: (protocols) => (protocols.has('binary') ? 'binary' : false),
  });
  const log = deps.log.child({ part: 'console' });

  app.server.on('upgrade', (req: UpgradingRequest, socket: Duplex, head: Buffer) => {
    if (!CONSOLE_PATH.test(req.url ?? '')) return; // socket.io's, or nobody's (engine.io ends those)
    req[UPGRADE] = { socket, head };
    const res = new ServerResponse(req);
    res.assignSocket(socket as net.Socket);
    // A refusal is an ordinary HTTP answer on the socket; then the socket is done.
    res.on('finish', () => socket.end());
    socket.on('error', () => socket.destroy());
    app.routing(req, res);
  });
  app.addHook('onClose', async () => {
    for (const client of wss.clients) client.terminate();
    wss.close();
  });

  app.get<{ Params: { id: number } }>(
    '/api/v1/vms/:id/console',
    {
      schema: {
        tags: ['vms'],
        summary:
          "The VM's console: its VNC display (RFB) over a WebSocket (binary frames); for who may control the VM",
        description:
          'Open as a WebSocket (subprotocol `binary`); a plain GET answers 426 when the console could be opened. The Origin, when sent, must be herd itself.',
        params: idParam,
        response: { ...errorResponses, 426: errorSchema },
      },
    },
    async (request, reply) => {
      assertSameOrigin(request);
      const target = await consoleTarget(deps, request.user, request.params.id);
      const upgrade = (request.raw as UpgradingRequest)[UPGRADE];
      if (!upgrade) {
        throw new HttpError(
          426,
          'upgrade_required',
          'open this URL as a WebSocket (RFB in binary frames): the console can be opened',
        );
      }
      reply.hijack();
      wss.handleUpgrade(request.raw, upgrade.socket, upgrade.head, (ws) => {
        bridge(ws, target, request.user.id, log);
      });
    },
  );
}

/** A browser sends its Origin with every WebSocket; only herd's own pages may use the session cookie. */
function assertSameOrigin(request: FastifyRequest): void {
  const origin = request.headers.origin;
  if (origin !== undefined && !isSameOrigin(origin, request.headers.host)) {
    throw new HttpError(
      403,
      'origin_refused',
      `the console is opened from herd's own pages only, not ${origin}`,
    );
  }
}

/** Bytes both ways between the WebSocket and the VNC server; either side closing closes the other. */
function bridge(ws: WebSocket, target: VncTarget, userId: number, log: AppDeps['log']): void {
  const vnc = net.connect({ host: target.host, port: target.port });
  const started = Date.now();
  log.info({ vmId: target.vmId, userId, vnc: `${target.host}:${target.port}` }, 'console opened');
  vnc.setNoDelay(true);
  vnc.on('data', (chunk) => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(chunk, { binary: true });
    // A slow browser: stop reading from VNC until its buffer drains.
    if (ws.bufferedAmount > 4 * 1024 * 1024) {
      vnc.pause();
      const resume = setInterval(() => {
        if (ws.readyState !== ws.OPEN || ws.bufferedAmount < 1024 * 1024) {
          clearInterval(resume);
          vnc.resume();
        }
      }, 20);
    }
  });
  ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
    vnc.write(Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer));
  });
  const end = (why: string) => {
    if (!vnc.destroyed) vnc.destroy();
    if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(1000, why.slice(0, 100));
  };
  vnc.on('error', (err) => {
    log.warn({ vmId: target.vmId, err: err.message }, 'console: VNC connection failed');
    end('VNC connection failed');
  });
  vnc.on('close', () => end('VNC closed'));
  ws.on('close', () => {
    end('browser closed');
    log.info({ vmId: target.vmId, userId, seconds: (Date.now() - started) / 1000 }, 'console closed');
  });
  ws.on('error', () => end('WebSocket error'));
}
