import type { EventEmitter } from 'node:events';
import type { HostLiveSummary } from '../../ingest/live-view.js';
import type { Database } from '../../lib/db.js';
import type { Logger } from '../../lib/log.js';
import { Histogram, type Registry } from '../../lib/metrics.js';
import { type DomainEvent, DomainEventStreams } from './domain-events.js';
import type { DomainInfo, HostConnections, HostInventory } from './driver/index.js';
import { emitHostState, emitVmState } from './host-events.js';
import { collectdSilent, hostState } from './host-state.js';
import { allHosts, findHostByUri, type HostRow, recordHeartbeat } from './hosts.repository.js';
import {
  applyReconciledState,
  domainsByUuid,
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
   * Follow each real host's libvirt domain events (`virsh event`, api/hosts/domain-events.ts): a lifecycle event
   * checks that host at once, with the heartbeat's own reconciliation, instead of at the next heartbeat.
   * Never for test:// hosts (another connection would be another fake host).
   */
  domainEvents?: boolean;
  /** Where the heartbeat's cycle duration is reported (`herd_host_heartbeat_cycle_seconds`). */
  registry?: Registry;
  now?: () => number;
}

export interface TickResult {
  hosts: number;
  up: number;
  failed: number;
  vmChanges: number;
}

/** What a host's check is waiting for. */
type CheckStep = "reading herd's VMs" | 'the connection' | 'ping' | 'the domain list' | 'the inventory';

interface CheckResult {
  /** herd's idle VMs on the host, read before libvirt was asked (idleVmsOnHost). */
  vms: VmOnHost[];
  domains?: DomainInfo[];
  inventory?: HostInventory;
  error?: string;
}

/**
 * The heartbeat: every interval, each host's driver is pinged and its domains listed; herd's VM rows are
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
  private readonly streams: DomainEventStreams | undefined;
  /** Hosts being checked because of a domain event, and those to check once more after that check. */
  private readonly poking = new Map<number, Promise<void>>();
  private readonly pokeAgain = new Set<number>();
  private readonly cycleSeconds: Histogram | undefined;

  constructor(private readonly options: HostMonitorOptions) {
    this.now = options.now ?? Date.now;
    if (options.registry) {
      this.cycleSeconds = new Histogram({
        name: 'herd_host_heartbeat_cycle_seconds',
        help: 'How long one heartbeat over every host took (the next starts HERD_HEARTBEAT_SECONDS after it ends)',
        buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300],
        registers: [options.registry],
      });
    }
    if (options.domainEvents) {
      this.streams = new DomainEventStreams(options.log.child({ part: 'domain-events' }), (uri, event) =>
        this.onDomainEvent(uri, event),
      );
    }
  }

  /** The event streams, for tests: which hosts are watched, a stream's pid. */
  get domainEventStreams(): DomainEventStreams | undefined {
    return this.streams;
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
    this.streams?.stop();
    await this.running?.catch(() => {});
    await Promise.all(this.poking.values());
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

  private async checkOthers(hostId: number): Promise<void> {
    if (this.stopped) return;
    try {
      const others = (await allHosts(this.options.db)).filter((h) => h.id !== hostId);
      await Promise.all(others.map((h) => this.checkHost(h)));
    } catch (err) {
      this.options.log.warn({ err }, 'checking the other hosts failed');
    }
  }

  private onDomainEvent(uri: string, event: DomainEvent): void {
    if (this.stopped || event.kind !== 'lifecycle') return;
    this.options.log.debug({ uri, ...event }, 'domain event');
    void findHostByUri(this.options.db, uri)
      .then((host) => (host ? this.checkHost(host) : undefined))
      .catch((err) => this.options.log.warn({ err, uri }, 'reading the host of a domain event failed'));
  }

  /** One heartbeat over every host; exported for tests and for `herd` to run one at startup. */
  tick(): Promise<TickResult> {
    if (!this.running) {
      const end = this.cycleSeconds?.startTimer();
      this.running = this.runTick().finally(() => {
        end?.();
        this.running = undefined;
      });
    }
    return this.running;
  }

  private async runTick(): Promise<TickResult> {
    this.ticks++;
    const hosts = await allHosts(this.options.db);
    if (!this.stopped) this.streams?.sync(hosts.filter((h) => !h.uri.startsWith('test:')).map((h) => h.uri));
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
      at.step = 'ping';
      await driver.ping();
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
    const correct = async (vm: VmOnHost, next: string, from?: number) => {
      const moved = from !== undefined;
      if (
        !(await applyReconciledState(this.options.db, vm, from ?? host.id, next, moved ? host.id : undefined))
      )
        return;
      changes++;
      this.options.log.info(
        { vmId: vm.id, hostId: host.id, state: next, previous: vm.state, ...(moved ? { from } : {}) },
        moved ? 'VM found on another host: record moved' : 'VM state corrected from libvirt',
      );
      emitVmState(this.options.events, {
        vmId: vm.id,
        uuid: vm.uuid,
        name: vm.name,
        poolId: vm.pool_id,
        hostId: host.id,
        state: next,
        previous: vm.state,
        reason: 'reconcile',
        at: new Date(this.now()).toISOString(),
      });
    };
    let vanished = false;
    for (const vm of vms) {
      const next = reconciledState(vm.state, byUuid.get(vm.uuid.toLowerCase())?.state);
      if (next === null) continue;
      await correct(vm, next);
      vanished ||= next === 'unknown';
    }
    // Following events, a domain gone from here may just have arrived elsewhere: look there now, not in a heartbeat.
    if (vanished && this.streams) void this.checkOthers(host.id);
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
      if (state) await correct(vm, state, vm.host_id);
    }
    return changes;
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
