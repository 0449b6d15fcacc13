import type { Logger } from '../../lib/log.js';
import type { HostConnections, HostDomainEvent, HostDriver } from './driver/index.js';

/** A host whose domain events are followed. */
export interface WatchedHost {
  id: number;
  uri: string;
}

export interface DomainEventHandlers {
  onEvent(host: WatchedHost, event: HostDomainEvent): void;
  /** The host's connection came back: its events meanwhile were missed. */
  onReconnect(host: WatchedHost): void;
}

interface Watch {
  host: WatchedHost;
  /** The driver subscribed on, once subscribed. */
  driver?: HostDriver;
  unsubscribe?: () => Promise<void>;
  /** A subscription under way. */
  pending?: Promise<void>;
}

/**
 * Each host's domain events, pushed by libvirt over the host's own connection (the driver's
 * `watchDomainEvents`: ConnectDomainEventCallbackRegisterAny, registered again by the connection after a reconnect):
 * no process, no second connection. `sync` sets the hosts followed and subscribes again where the host's driver
 * was replaced (HostConnections dropped and reopened it); a subscription that failed is tried at the next sync.
 */
export class DomainEventWatch {
  private readonly watches = new Map<number, Watch>();
  private stopped = false;

  constructor(
    private readonly connections: HostConnections,
    private readonly log: Logger,
    private readonly handlers: DomainEventHandlers,
  ) {}

  /** Follows exactly these hosts. */
  sync(hosts: WatchedHost[]): void {
    if (this.stopped) return;
    const wanted = new Map(hosts.map((h) => [h.id, h]));
    for (const [id, watch] of this.watches) {
      if (wanted.get(id)?.uri !== watch.host.uri) this.end(id);
    }
    for (const host of wanted.values()) {
      const watch = this.watches.get(host.id) ?? { host };
      this.watches.set(host.id, watch);
      watch.pending ??= this.subscribe(watch).finally(() => {
        watch.pending = undefined;
      });
    }
  }

  /** The URIs of the hosts whose events arrive now. */
  watched(): string[] {
    return [...this.watches.values()].filter((w) => w.unsubscribe).map((w) => w.host.uri);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const all = [...this.watches.keys()];
    await Promise.all(all.map((id) => this.end(id)));
  }

  private async end(id: number): Promise<void> {
    const watch = this.watches.get(id);
    if (!watch) return;
    this.watches.delete(id);
    await watch.pending;
    await watch.unsubscribe?.().catch(() => undefined);
  }

  private async subscribe(watch: Watch): Promise<void> {
    const { host } = watch;
    try {
      const driver = await this.connections.get(host.uri);
      if (watch.driver === driver || this.watches.get(host.id) !== watch) return;
      await watch.unsubscribe?.().catch(() => undefined);
      watch.unsubscribe = undefined;
      watch.driver = undefined;
      const unsubscribe = await driver.watchDomainEvents({
        onEvent: (event) => {
          try {
            this.handlers.onEvent(host, event);
          } catch (err) {
            this.log.warn({ err, uri: host.uri }, 'handling a domain event failed');
          }
        },
        onReconnect: () => this.handlers.onReconnect(host),
      });
      if (this.stopped || this.watches.get(host.id) !== watch) {
        await unsubscribe().catch(() => undefined);
        return;
      }
      watch.driver = driver;
      watch.unsubscribe = unsubscribe;
    } catch (err) {
      this.log.debug({ err, uri: host.uri }, 'domain events: not subscribed (next heartbeat tries again)');
    }
  }
}
