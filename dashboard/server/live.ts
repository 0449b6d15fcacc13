import type { EventEmitter } from 'node:events';
import type { FastifyInstance } from 'fastify';
import { Server, type Socket } from 'socket.io';
import type { AlertEvent } from '../../api/alerts/alert-feed.js';
import { authenticate, SESSION_COOKIE } from '../../api/auth/auth.service.js';
import type { AuthUser } from '../../api/auth/auth-user.js';
import {
  HOST_STATE_EVENT,
  type HostStateEvent,
  VM_STATE_EVENT,
  type VmStateEvent,
} from '../../api/hosts/host-events.js';
import { isSameOrigin } from '../../api/http/same-origin.js';
import type { LiveReader } from '../../ingest/live-view.js';
import type { Logger } from '../../lib/log.js';
import type { Database } from '../../schema/db.js';
import { ChangeWatcher } from './change-watcher.js';
import { rooms, roomsOf, vmRooms } from './live-rooms.js';

/** Event name on the process's EventEmitter (AppDeps.events) for anything else to push to browsers. */
export const LIVE_EVENT = 'live';
/** Alert changes (api/alerts AlertFeed's 'alert' events), forwarded on AppDeps.events under this name. */
export const ALERT_EVENT = 'alert';

/**
 * Something for the browsers that may see it: a VM's (`poolId` + `ownerId`), a pool's (`poolId`), a user's
 * (`userId`); with none of them, only super-admins receive it. `name` is the socket.io event name.
 */
export interface LivePublication {
  name: string;
  poolId?: number | null;
  ownerId?: number;
  userId?: number;
  data: unknown;
}

export interface LiveOptions {
  db: Database;
  log: Logger;
  liveView?: LiveReader;
  /** `host.state`, `vm.state` (api/hosts/host-events.ts), `alert` (AlertEvent), `live` (LivePublication). */
  events?: EventEmitter;
  /** How often the database is checked for host, VM and task changes. */
  watchMs?: number;
  /** How often the live figures of every host and VM are pushed (also those other herd processes received). */
  metricsMs?: number;
  /**
   * How often the figures of hosts and VMs whose packets just landed are pushed: coalesced, so each room gets at
   * most one push per period, with the figures of what changed in it (bounded work: what changed, per room).
   */
  pushMs?: number;
  /** How often each socket's credentials and rooms are checked again (revoked sessions, changed roles). */
  recheckMs?: number;
}

export interface LiveServer {
  io: Server;
  publish(publication: LivePublication): void;
}

interface SocketData {
  user: AuthUser;
  token: string;
}

/** The sum of two rates; null when neither is known. */
const both = (a: number | undefined, b: number | undefined) =>
  a === undefined && b === undefined ? null : (a ?? 0) + (b ?? 0);

const RUNNING = new Set(['running', 'paused', 'migrating', 'stopping', 'suspending', 'saving']);

/**
 * Live updates over socket.io on the app's HTTP server (path /socket.io). A socket authenticates like the
 * API — the session cookie (same origin only) or `auth: {token}` — and joins the rooms of what its user may
 * see (live-rooms.ts); every event goes to the rooms of what it is about. Browsers receive `host`, `vm`,
 * `task` (changes), `event` (collectd notifications as they are stored: ChangeWatcher), `metrics` (live figures
 * of hosts and VMs: those whose packets landed, within `pushMs`; every host's every `metricsMs`) and `alert`.
 */
export function attachLive(app: FastifyInstance, o: LiveOptions): LiveServer {
  const log = o.log.child({ part: 'live' });
  const io = new Server<any, any, any, SocketData>(app.server, {
    path: '/socket.io',
    serveClient: true,
    transports: ['websocket', 'polling'],
    // Upgrades that are not socket.io's are ended after this long unanswered; the VM console's
    // (api/vms/vm-console.routes.ts) answers once its access checks are done.
    destroyUpgradeTimeout: 10_000,
  });
  const send = (event: string, to: string[], data: unknown) => io.to([...to, rooms.all]).emit(event, data);
  const watcher = new ChangeWatcher(o.db, send, log, o.watchMs);

  // socket.io does not catch what an async middleware throws: every failure here must reach `next`, or the
  // client waits for ever and the process sees an unhandled rejection.
  io.use(async (socket, next) => {
    try {
      const bearer = socket.handshake.auth?.token;
      let token = typeof bearer === 'string' ? bearer : undefined;
      if (!token) {
        const cookie = socket.handshake.headers.cookie;
        token = cookie ? app.parseCookie(cookie)[SESSION_COOKIE] : undefined;
        // A cookie is sent by the browser whoever opens the socket: only this origin's pages may use it.
        const origin = socket.handshake.headers.origin;
        if (token && origin !== undefined && !isSameOrigin(origin, socket.handshake.headers.host))
          token = undefined;
      }
      const auth = token ? await authenticate(o.db, token).catch(() => null) : null;
      if (!auth || !token) return next(new Error('unauthorized'));
      socket.data = { user: auth.user, token };
      next();
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'live: could not authenticate a socket');
      next(new Error('unauthorized'));
    }
  });

  io.on('connection', (socket) => {
    void recheck(socket).then(() => socket.emit('ready', { userId: socket.data.user.id }));
  });

  async function recheck(socket: Socket<any, any, any, SocketData>): Promise<void> {
    try {
      const auth = await authenticate(o.db, socket.data.token);
      if (!auth) {
        socket.disconnect(true);
        return;
      }
      const wanted = await roomsOf(o.db, auth.user);
      for (const room of socket.rooms) if (room !== socket.id && !wanted.has(room)) socket.leave(room);
      socket.join([...wanted]);
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'live: could not check a socket');
    }
  }

  const publish = (p: LivePublication) => {
    const to: string[] = [];
    if (p.poolId != null && p.ownerId !== undefined)
      to.push(...vmRooms({ poolId: p.poolId, ownerId: p.ownerId }));
    else if (p.poolId != null) to.push(rooms.pool(p.poolId));
    if (p.userId !== undefined) to.push(rooms.user(p.userId));
    send(p.name, to, p.data);
  };

  /** Pushes live figures: of the hosts and guests named in `only` (collectd host names), or of all. */
  function pushMetrics(only?: Set<string>): void {
    const view = o.liveView;
    if (!view) return;
    if (only?.size === 0) return;
    const occupied = io.sockets.adapter.rooms;
    const batches = new Map<string, { hosts: Record<number, unknown>; vms: Record<number, unknown> }>();
    const batch = (room: string) => {
      const b = batches.get(room) ?? { hosts: {}, vms: {} };
      batches.set(room, b);
      return b;
    };
    const everyone = occupied.has(rooms.all);
    for (const h of watcher.hosts.values()) {
      if (only && !only.has(h.hostname)) continue;
      const room = rooms.pool(h.pool_id);
      if (!everyone && !occupied.has(room)) continue;
      const s = view.hostSummary(h.hostname);
      if (!s) continue;
      batch(room).hosts[h.id] = {
        lastSeen: s.lastSeen,
        cpu: s.cpuBusyPercent ?? null,
        load1: s.load1 ?? null,
        memoryUsedMiB: s.memoryUsedMiB ?? null,
        memoryFreeMiB: s.memoryFreeMiB ?? null,
      };
    }
    for (const v of watcher.vms.values()) {
      if (only && !only.has(v.uuid)) continue;
      if (!RUNNING.has(v.state)) continue;
      const to = vmRooms({ poolId: v.pool_id, ownerId: v.owner_id }).filter(
        (r) => everyone || occupied.has(r),
      );
      if (to.length === 0) continue;
      const s = view.guestSummary(v.uuid);
      if (!s) continue;
      const figures = {
        lastSeen: s.lastSeen,
        cpu: s.cpuPercent === undefined ? null : s.cpuPercent / Math.max(1, v.vcpus),
        memoryMiB: s.memoryMiB ?? null,
        // No rate yet (a first sample, a counter reset): no figure, not a zero.
        netBytesPerSec: both(s.netRxBytesPerSec, s.netTxBytesPerSec),
        diskBytesPerSec: both(s.diskReadBytesPerSec, s.diskWriteBytesPerSec),
      };
      for (const room of to) batch(room).vms[v.id] = figures;
    }
    // Super-admins are in every pool room: sending to the room alone reaches them.
    for (const [room, b] of batches) io.to(room).emit('metrics', b);
  }

  const onHost = (e: HostStateEvent) =>
    watcher.hostChanged({
      id: e.hostId,
      pool_id: e.poolId,
      hostname: e.hostname,
      state: e.state,
      enabled: e.enabled,
    });
  const onVm = (e: VmStateEvent) =>
    watcher.vmChanged({
      id: e.vmId,
      pool_id: e.poolId,
      host_id: e.hostId,
      name: e.name,
      state: e.state,
      at: new Date(e.at),
    });
  const onAlert = (e: AlertEvent) =>
    send('alert', e.alert.poolId === null ? [] : [rooms.pool(e.alert.poolId)], e);
  o.events?.on(HOST_STATE_EVENT, onHost);
  o.events?.on(VM_STATE_EVENT, onVm);
  o.events?.on(ALERT_EVENT, onAlert);
  o.events?.on(LIVE_EVENT, publish);

  const timers: NodeJS.Timeout[] = [];
  app.addHook('onReady', async () => {
    await watcher.start();
    timers.push(setInterval(() => pushMetrics(), o.metricsMs ?? 5000));
    const changed = o.liveView?.takeChanged?.bind(o.liveView);
    if (changed) timers.push(setInterval(() => pushMetrics(new Set(changed())), o.pushMs ?? 250));
    timers.push(
      setInterval(() => {
        for (const socket of io.sockets.sockets.values()) void recheck(socket);
      }, o.recheckMs ?? 10_000),
    );
    for (const t of timers) t.unref();
  });
  app.addHook('preClose', async () => {
    for (const t of timers) clearInterval(t);
    o.events?.off(HOST_STATE_EVENT, onHost);
    o.events?.off(VM_STATE_EVENT, onVm);
    o.events?.off(ALERT_EVENT, onAlert);
    o.events?.off(LIVE_EVENT, publish);
    await watcher.stop();
    io.disconnectSockets(true);
    // Not io.close(): it would close the HTTP server, which Fastify is closing itself.
    io.engine.close();
  });
  return { io, publish };
}
