import type { Socket } from 'socket.io-client';

type Handler = (data: any) => void;

const handlers = new Map<string, Set<Handler>>();
let socket: Socket | undefined;

/**
 * The socket.io connection (session cookie): `host`, `vm`, `task`, `event` (collectd notifications), `metrics` and `alert` events of what the
 * user may see. Pages subscribe with `onLive` and unsubscribe when they go.
 */
export function connectLive(): void {
  if (socket) return;
  socket = io({ path: '/socket.io', transports: ['websocket', 'polling'] });
  const status = (text: string, ok: boolean) => {
    const el = document.getElementById('live-status');
    if (!el) return;
    el.textContent = text;
    el.className = ok ? 'live on' : 'live off';
  };
  socket.on('connect', () => status('live', true));
  socket.on('disconnect', () => status('offline', false));
  socket.on('connect_error', () => status('offline', false));
  socket.onAny((event: string, data: unknown) => {
    for (const handler of handlers.get(event) ?? []) handler(data);
  });
}

export function disconnectLive(): void {
  socket?.disconnect();
  socket = undefined;
}

export function onLive(event: string, handler: Handler): () => void {
  const set = handlers.get(event) ?? new Set();
  handlers.set(event, set);
  set.add(handler);
  return () => set.delete(handler);
}
