import type { EventEmitter } from 'node:events';
import type { HostLiveSummary } from '../../ingest/live-view.js';
import type { Database } from '../../lib/db.js';
import type { Logger } from '../../lib/log.js';
import { DomainEventWatch, type WatchedHost } from './domain-events.js';
import type { DomainInfo, HostConnections, HostDomainEvent, HostInventory } from './driver/index.js';
import { emitHostState, emitVmState } from './host-events.js';
import { collectdSilent, hostState } from './host-state.js';
import { allHosts, type HostRow, recordHeartbeat } from './hosts.repository.js';
import {
  applyReconciledState,
  domainsByUuid,
  idleVmByUuid,
  idleVmsOnHost,
  reconciledState,
  strayVmsFoundOn,
  type VmOnHost,
} from './reconcile.js';

export interface HostMonitorOptions {
  db: Database;
  connections: HostConnections;
  log: Logger;
  /** collectd's side of the host's state; absent when ingest runs in another process. */
  liveView?: { hostSummary(hostname: string): HostLiveSummary | undefined };
  events?: EventEmitter;
  /** Seconds between heartbeats (HERD_HEARTBEAT_SECONDS). */
  intervalSeconds: number;
  /** How long one host may take to answer a heartbeat; defaults to the interval, at most 30 s. */
  timeoutMs?: number;
  /** Hosts checked at once. */
  concurrency?: number;
  /** Re-read a host's inventory every this many heartbeats (and whenever it comes back up). */
  inventoryEvery?: number;
  /**
   * Follow each host's libvirt domain events, pushed over its connection (api/hosts/domain-events.ts): an event
   * reconciles the one VM it names at once, instead of at the next heartbeat.
   */
  domainEvents?: boolean;
  now?: () => number;
}

export interface TickResult {
  hosts: number;
  up: number;
  failed: number;
  vmChanges: number;
}

/** What a host's check is waiting for. */
type CheckStep = "reading herd's VMs" | 'the connection' | 'the domain list' | 'the inventory';

interface CheckResult {
  /** herd's idle VMs on the host, read before libvirt was asked (idleVmsOnHost). */
  vms: VmOnHost[];
  domains?: DomainInfo[];
  inventory?: HostInventory;
  error?: string;
}

/** VMs remembered as seen on a host other than their own, awaiting their own host's word (bounded). */
const SEEN_ELSEWHERE_MAX = 10_000;

/**
 * The heartbeat: every interval, each host's domains are listed (one call: ConnectGetAllDomainStats, which also
 * proves the connection); herd's VM rows are
 * reconciled with libvirt by UUID, and the host's state is derived from the heartbeat and collectd's
 * last-seen time. Runs in the worker role. Several processes may run it on one database: every write is
 * conditional on the state it saw, so each change is applied (and announced) once.
 */
export class HostMonitor {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<TickResult> | undefined;
  private stopped = true;
  private ticks = 0;
  /**
   * Hosts whose previous check has not come back (never two at once on one host), with the step it is at: a check
   * that does not answer in time names it (which libvirt call hangs is what an operator needs to know).
   */
  private readonly inFlight = new Map<number, { result: Promise<CheckResult>; at: { step: CheckStep } }>();
  /** Last collectd silence reported per host, to announce changes only. */
  private readonly silence = new Map<number, boolean>();
  private readonly now: () => number;
  private readonly watch: DomainEventWatch | undefined;
  /** Hosts being checked out of the heartbeat's rhythm, and those to check once more after that check. */
  private readonly poking = new Map<number, Promise<void>>();
  private readonly pokeAgain = new Set<number>();
  /** VMs (by UUID) an event is being applied to, and those to apply once more after that. */
  private readonly applying = new Map<string, Promise<void>>();
  private readonly applyAgain = new Map<string, WatchedHost>();
  /**
   * A VM's domain seen running on a host other than its own while its own host still had it (a migration outside
   * herd: the destination's event may come first): when its own host then reports it gone, that host is looked
   * at, and no other.
   */
  private readonly seenElsewhere = new Map<string, WatchedHost>();

  constructor(private readonly options: HostMonitorOptions) {
    this.now = options.now ?? Date.now;
    if (options.domainEvents) {
      this.watch = new DomainEventWatch(options.connections, options.log.child({ part: 'domain-events' }), {
        onEvent: (host, event) => this.onDomainEvent(host, event),
        // Events were missed while the connection was down: the host is checked now.
        onReconnect: (host) => this.onReconnect(host),
      });
    }
  }

  /** The domain event subscriptions, for tests: which hosts are followed. */
  get domainEventWatch(): DomainEventWatch | undefined {
    return this.watch;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const loop = async () => {
      if (this.stopped) return;
      await this.tick().catch((err) => this.options.log.error({ err }, 'host heartbeat failed'));
      if (!this.stopped) this.timer = setTimeout(loop, this.options.intervalSeconds * 1000);
    };
    void loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.watch?.stop();
    await this.running?.catch(() => {});
    await Promise.all([...this.poking.values(), ...this.applying.values()]);
  }

  /**
   * Checks one host now, out of the heartbeat's rhythm: ping, domain list, the same reconciliation. A check
   * already under way may have listed the domains before the change that prompted this one, so it is awaited
   * and the host checked again; pokes during a check coalesce into one more check.
   */
  checkHost(host: HostRow): Promise<void> {
    const running = this.poking.get(host.id);
    if (running) {
      this.pokeAgain.add(host.id);
      return running;
    }
    const run = (async () => {
      do {
        this.pokeAgain.delete(host.id);
        await this.inFlight.get(host.id)?.result;
        await this.heartbeat(host);
      } while (this.pokeAgain.has(host.id) && !this.stopped);
    })()
      .catch((err) =>
        this.options.log.warn({ err, hostId: host.id }, 'checking a host after an event failed'),
      )
      .finally(() => this.poking.delete(host.id));
    this.poking.set(host.id, run);
    return run;
  }

  private onReconnect(host: WatchedHost): void {
    if (this.stopped) return;
    void allHosts(this.options.db)
      .then((hosts) => hosts.find((h) => h.id === host.id && h.uri === host.uri))
      .then((row) => (row ? this.checkHost(row) : undefined))
      .catch((err) => this.options.log.warn({ err, uri: host.uri }, 'checking a reconnected host failed'));
  }

  private onDomainEvent(host: WatchedHost, event: HostDomainEvent): void {
    if (this.stopped) return;
    this.options.log.debug({ uri: host.uri, ...event }, 'domain event');
    // A migration's iterations change no state; its end comes as lifecycle and job-completed events.
    if (event.kind === 'migration-iteration') return;
    void this.applyDomainEvent(host, event.uuid.toLowerCase());
  }

  /**
   * Applies a domain event to the one VM it names: reads that VM (if no task acts on it) and the domain's state on
   * the event's host (one call), and corrects the VM as the heartbeat would. Events for one VM coalesce: while one
   * is applied, the next waits, and several waiting become one.
   */
  private applyDomainEvent(host: WatchedHost, uuid: string): Promise<void> {
    const running = this.applying.get(uuid);
    if (running) {
      this.applyAgain.set(uuid, host);
      return running;
    }
    const run = (async () => {
      let next: WatchedHost | undefined = host;
      while (next && !this.stopped) {
        this.applyAgain.delete(uuid);
        await this.reconcileOne(next, uuid);
        next = this.applyAgain.get(uuid);
      }
    })()
      .catch((err) => this.options.log.warn({ err, uri: host.uri, uuid }, 'applying a domain event failed'))
      .finally(() => this.applying.delete(uuid));
    this.applying.set(uuid, run);
    return run;
  }

  private async reconcileOne(host: WatchedHost, uuid: string): Promise<void> {
    const vm = await idleVmByUuid(this.options.db, uuid);
    if (!vm || vm.host_id === null) return;
    const driver = await this.options.connections.get(host.uri);
    const domain = await driver.domain(uuid);
    if (vm.host_id === host.id) {
      const next = reconciledState(vm.state, domain?.state);
      if (next !== null) await this.correct(host.id, vm, next);
      if (next === 'unknown') {
        // Gone from here: if it was seen on another host, look there (and only there).
        const elsewhere = this.seenElsewhere.get(uuid);
        this.seenElsewhere.delete(uuid);
        if (elsewhere) await this.reconcileOne(elsewhere, uuid);
      }
      return;
    }
    if (domain?.state !== 'running' && domain?.state !== 'paused') return;
    if (vm.state === 'unknown') {
      // Its own host lost it and it runs here: moved outside herd.
      this.seenElsewhere.delete(uuid);
      await this.correct(host.id, vm, domain.state, vm.host_id);
      return;
    }
    this.seenElsewhere.delete(uuid);
    this.seenElsewhere.set(uuid, host);
    if (this.seenElsewhere.size > SEEN_ELSEWHERE_MAX) {
      this.seenElsewhere.delete(this.seenElsewhere.keys().next().value as string);
    }
  }

  /** One heartbeat over every host; exported for tests and for `herd` to run one at startup. */
  tick(): Promise<TickResult> {
    this.running ??= this.runTick().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async runTick(): Promise<TickResult> {
    this.ticks++;
    const hosts = await allHosts(this.options.db);
    if (!this.stopped) this.watch?.sync(hosts.map((h) => ({ id: h.id, uri: h.uri })));
    const result: TickResult = { hosts: hosts.length, up: 0, failed: 0, vmChanges: 0 };
    const queue = [...hosts];
    const workers = Array.from(
      { length: Math.min(this.options.concurrency ?? 16, queue.length) },
      async () => {
        for (let host = queue.shift(); host; host = queue.shift()) {
          try {
            const { ok, vmChanges } = await this.heartbeat(host);
            if (ok) result.up++;
            else result.failed++;
            result.vmChanges += vmChanges;
          } catch (err) {
            result.failed++;
            this.options.log.error({ err, hostId: host.id }, 'recording a heartbeat failed');
          }
        }
      },
    );
    await Promise.all(workers);
    return result;
  }

  private async heartbeat(host: HostRow): Promise<{ ok: boolean; vmChanges: number }> {
    const refreshInventory = host.state !== 'up' || this.ticks % (this.options.inventoryEvery ?? 60) === 0;
    const pending = this.inFlight.get(host.id);
    const late = pending !== undefined;
    const { result, at } = pending ?? this.startCheck(host, refreshInventory);
    const outcome = await withTimeout(result, this.timeoutMs(), () => ({
      vms: [],
      error: `no answer from libvirt within ${this.timeoutMs() / 1000} s (waiting for ${at.step}${late ? '; previous heartbeat still pending' : ''})`,
    }));
    if (outcome.error && !host.uri.startsWith('test:')) {
      // The connection may be dead (libvirtd restarted, network cut): reopen it next time. Never for the test
      // driver, whose fake host would be reborn empty.
      void this.options.connections.drop(host.uri);
    }

    const live = this.options.liveView?.hostSummary(host.hostname);
    const lastSeenMs = Math.max(host.last_seen_at?.getTime() ?? 0, live?.lastSeen ?? 0) || null;
    const silent = collectdSilent(lastSeenMs, live?.interval ?? null, this.now());
    const state = hostState(!outcome.error, silent);
    const recorded = await recordHeartbeat(this.options.db, host.id, {
      state,
      heartbeatError: outcome.error ?? null,
      heartbeatAt: outcome.error ? undefined : new Date(this.now()),
      lastSeenAt: live ? new Date(live.lastSeen) : undefined,
      inventory: outcome.inventory,
    });
    if (!recorded) return { ok: !outcome.error, vmChanges: 0 };

    const { previous, row } = recorded;
    const silenceChanged = this.silence.has(host.id) && this.silence.get(host.id) !== silent;
    this.silence.set(host.id, silent);
    if (previous !== state || silenceChanged) {
      if (previous !== state) {
        this.options.log.info(
          { hostId: host.id, hostname: row.hostname, state, previous, error: outcome.error },
          'host state changed',
        );
      }
      emitHostState(this.options.events, {
        hostId: row.id,
        hostname: row.hostname,
        poolId: row.pool_id,
        state,
        previous,
        heartbeatError: row.heartbeat_error,
        collectdSilent: silent,
        enabled: row.enabled,
        at: new Date(this.now()).toISOString(),
      });
    }
    const vmChanges = outcome.domains ? await this.reconcile(row, outcome.vms, outcome.domains) : 0;
    return { ok: !outcome.error, vmChanges };
  }

  private startCheck(host: HostRow, withInventory: boolean) {
    const at = { step: "reading herd's VMs" as CheckStep };
    const check = { result: this.check(host, withInventory, at), at };
    this.inFlight.set(host.id, check);
    void check.result.finally(() => this.inFlight.delete(host.id));
    return check;
  }

  /** Reads herd's VMs on the host, then asks libvirt; `at` follows the step it waits for. */
  private async check(host: HostRow, withInventory: boolean, at: { step: CheckStep }): Promise<CheckResult> {
    const vms = await idleVmsOnHost(this.options.db, host.id);
    try {
      at.step = 'the connection';
      const driver = await this.options.connections.get(host.uri);
      at.step = 'the domain list';
      const domains = await driver.listDomains();
      at.step = 'the inventory';
      const inventory = withInventory ? await driver.inventory() : undefined;
      return { vms, domains, inventory };
    } catch (err) {
      return { vms, error: err instanceof Error ? err.message : String(err) };
    }
  }

  private async reconcile(host: HostRow, vms: VmOnHost[], domains: DomainInfo[]): Promise<number> {
    const byUuid = domainsByUuid(domains);
    let changes = 0;
    for (const vm of vms) {
      const next = reconciledState(vm.state, byUuid.get(vm.uuid.toLowerCase())?.state);
      if (next !== null && (await this.correct(host.id, vm, next))) changes++;
    }
    // A VM whose domain vanished from its host (unknown there) and runs here was moved outside herd: follow it.
    const mine = new Set(vms.map((v) => v.uuid.toLowerCase()));
    const active = domains.filter(
      (d) => (d.state === 'running' || d.state === 'paused') && !mine.has(d.uuid.toLowerCase()),
    );
    for (const vm of await strayVmsFoundOn(
      this.options.db,
      host.id,
      active.map((d) => d.uuid.toLowerCase()),
    )) {
      const state = byUuid.get(vm.uuid.toLowerCase())?.state;
      if (state && (await this.correct(host.id, vm, state, vm.host_id))) changes++;
    }
    return changes;
  }

  /**
   * Records what libvirt says of one VM on `hostId` (moving its record there from host `from`) if the VM is still
   * as it was read, and announces it. True when the row changed.
   */
  private async correct(hostId: number, vm: VmOnHost, next: string, from?: number): Promise<boolean> {
    const moved = from !== undefined;
    if (
      !(await applyReconciledState(this.options.db, vm, from ?? hostId, next, moved ? hostId : undefined))
    ) {
      return false;
    }
    this.options.log.info(
      { vmId: vm.id, hostId, state: next, previous: vm.state, ...(moved ? { from } : {}) },
      moved ? 'VM found on another host: record moved' : 'VM state corrected from libvirt',
    );
    emitVmState(this.options.events, {
      vmId: vm.id,
      uuid: vm.uuid,
      name: vm.name,
      poolId: vm.pool_id,
      hostId,
      state: next,
      previous: vm.state,
      reason: 'reconcile',
      at: new Date(this.now()).toISOString(),
    });
    return true;
  }

  private timeoutMs(): number {
    return this.options.timeoutMs ?? Math.min(this.options.intervalSeconds * 1000, 30_000);
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => T): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve(onTimeout()), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
