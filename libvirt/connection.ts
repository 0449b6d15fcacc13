/**
 * A connection to one libvirt host that stays up: it opens a `LibvirtClient`, and when that closes (the daemon
 * restarted, the network broke, the keepalive declared the host dead) it opens a new one after a backoff
 * (doubling from `initialMs` to `maxMs`, with jitter), re-registers every domain event subscription on it and
 * emits 'reconnected'. Calls while disconnected fail at once with "no connection driver available" (the caller's
 * heartbeat retries); nothing queues up behind a dead host.
 */
import { EventEmitter } from 'node:events';
import { type CallOptions, type ClientOptions, LibvirtClient } from './client.js';
import { ErrorCode, ErrorDomain, LibvirtError } from './packet.js';
import type { DomainEvent, Procedure } from './procedures.js';

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

export interface ConnectionOptions extends ClientOptions {
  backoff?: Partial<BackoffOptions>;
}

type EventHandler = (ev: DomainEvent) => void;

interface Subscription {
  eventId: number;
  handler: EventHandler;
  /** The callback id on the current client, null while not registered. */
  callbackId: number | null;
}

export class LibvirtConnection extends EventEmitter<{
  connected: [];
  reconnected: [];
  disconnected: [LibvirtError | null];
  /** A (re)connection attempt failed; the next one comes after `delayMs`. */
  'connect-failed': [Error, number];
}> {
  private client: LibvirtClient | null = null;
  private readonly subscriptions = new Set<Subscription>();
  private stopped = false;
  private everConnected = false;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private connecting: Promise<void> | null = null;
  private readonly backoff: BackoffOptions;

  constructor(
    readonly uri: string,
    private readonly options: ConnectionOptions = {},
  ) {
    super();
    this.backoff = { initialMs: 500, maxMs: 30_000, ...(options.backoff ?? {}) };
  }

  /** Connects now; on failure keeps retrying in the background and rejects with the first error. */
  start(): Promise<void> {
    return this.connectOnce();
  }

  /** Resolves once connected (or rejects after `timeoutMs`). */
  waitConnected(timeoutMs: number): Promise<void> {
    if (this.client && !this.client.closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.off('connected', done);
        this.off('reconnected', done);
        resolve();
      };
      const timer = setTimeout(() => {
        this.off('connected', done);
        this.off('reconnected', done);
        reject(new Error(`not connected to ${this.uri} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.on('connected', done);
      this.on('reconnected', done);
    });
  }

  get connected(): boolean {
    return this.client !== null && !this.client.closed;
  }

  /** The current client (its stats, its peer), or null while disconnected. */
  get current(): LibvirtClient | null {
    return this.connected ? this.client : null;
  }

  call<A, R>(proc: Procedure<A, R>, args: A, options?: CallOptions): Promise<R> {
    const client = this.current;
    if (!client) {
      return Promise.reject(
        new LibvirtError({
          code: ErrorCode.NO_CONNECT,
          domain: ErrorDomain.RPC,
          local: true,
          message: `no connection driver available for ${this.uri}: reconnecting`,
        }),
      );
    }
    return client.call(proc, args, options);
  }

  /**
   * Subscribes to one kind of domain event (`DomainEventId`) for every domain, now and after every reconnect.
   * Resolves once registered on the current connection (at once when disconnected); answers the unsubscribe.
   */
  async subscribe(eventId: number, handler: EventHandler): Promise<() => Promise<void>> {
    const sub: Subscription = { eventId, handler, callbackId: null };
    this.subscriptions.add(sub);
    const client = this.current;
    if (client) await this.register(client, sub);
    return async () => {
      this.subscriptions.delete(sub);
      const c = this.current;
      if (c && sub.callbackId !== null) await c.deregisterDomainEvent(sub.callbackId).catch(() => undefined);
      sub.callbackId = null;
    };
  }

  async close(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await this.connecting?.catch(() => undefined);
    const client = this.client;
    this.client = null;
    await client?.close();
  }

  private async register(client: LibvirtClient, sub: Subscription): Promise<void> {
    sub.callbackId = await client.registerDomainEvent(sub.eventId);
  }

  private connectOnce(): Promise<void> {
    if (this.connecting) return this.connecting;
    this.connecting = (async () => {
      try {
        const client = await LibvirtClient.connect(this.uri, this.options);
        if (this.stopped) {
          await client.close();
          return;
        }
        client.on('event', (ev) => {
          // Every subscriber gets the event; the first error is thrown on to the client, which counts it.
          let failure: unknown = null;
          for (const sub of this.subscriptions) {
            if (sub.callbackId !== ev.callbackId) continue;
            try {
              sub.handler(ev);
            } catch (err) {
              failure ??= err;
            }
          }
          if (failure) throw failure;
        });
        client.once('close', (err) => this.onClosed(client, err));
        for (const sub of this.subscriptions) sub.callbackId = null;
        for (const sub of this.subscriptions) await this.register(client, sub);
        this.client = client;
        this.attempt = 0;
        const first = !this.everConnected;
        this.everConnected = true;
        this.emit(first ? 'connected' : 'reconnected');
      } catch (err) {
        this.scheduleRetry(err as Error);
        throw err;
      } finally {
        this.connecting = null;
      }
    })();
    return this.connecting;
  }

  private onClosed(client: LibvirtClient, err: LibvirtError | null): void {
    if (this.client !== client) return;
    this.client = null;
    for (const sub of this.subscriptions) sub.callbackId = null;
    this.emit('disconnected', err);
    if (!this.stopped) this.scheduleRetry(err ?? new Error('connection closed'));
  }

  private scheduleRetry(err: Error): void {
    if (this.stopped || this.retryTimer) return;
    const base = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** this.attempt);
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.attempt++;
    this.emit('connect-failed', err, delay);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connectOnce().catch(() => undefined);
    }, delay);
  }
}
