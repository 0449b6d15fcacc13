import { EventEmitter } from 'node:events';
import type { FastifyInstance } from 'fastify';
import type { startAlerting } from '../api/alerts/start-alerting.js';
import type { HostConnections } from '../api/hosts/driver/index.js';
import { prepareTaskQueue } from '../api/tasks/task-queue.js';
import { balancerPublication } from '../dashboard/server/balancer-feed.js';
import type { IngestService } from '../ingest/ingest-service.js';
import { LivePublisher, processName, SharedLiveView } from '../ingest/live-share.js';
import { LiveView } from '../ingest/live-view.js';
import type { MetricsStore } from '../ingest/store/metrics-store.js';
import type { Rollups } from '../ingest/store/rollups.js';
import { createStores } from '../ingest/store/stores.js';
import type { Config } from '../lib/config.js';
import type { Logger } from '../lib/log.js';
import { createRegistry } from '../lib/metrics.js';
import { type DatabaseHandle, migrateOrThrow, openDatabase } from '../schema/db.js';

export const ROLES = ['ingest', 'api', 'worker'] as const;
export type Role = (typeof ROLES)[number];

export interface RunningHerd {
  database: DatabaseHandle;
  store: MetricsStore;
  rollups: Rollups;
  liveView: LiveView;
  /**
   * The live view with what other herd processes published (ingest/live-share.ts): what placement, host answers,
   * the dashboard and alerting read. Absent in a worker-only process.
   */
  sharedLiveView?: SharedLiveView;
  /** Host and VM state changes, tasks and alerts, for live pushes (`host.state`, `vm.state`, `alert`). */
  events: EventEmitter;
  ingest?: IngestService;
  http?: FastifyInstance;
  /** The bound HTTP address, e.g. http://127.0.0.1:8080 */
  httpUrl?: string;
  stop(): Promise<void>;
}

/** How long a stop waits for HTTP responses still being sent before it closes their connections. */
const HTTP_CLOSE_GRACE_MS = 5_000;

/**
 * Starts the requested roles of herd on one database. `stop()` is safe to call twice.
 * Each role's modules load only when that role runs: `serve --only ingest` then carries neither the HTTP
 * API and dashboard nor the libvirt client and task worker, which were most of its memory at start.
 */
export async function startHerd(
  config: Config,
  log: Logger,
  options: { roles: readonly Role[] },
): Promise<RunningHerd> {
  const database = await openDatabase(config, log);
  const stops: Array<() => Promise<unknown>> = [() => database.close()];
  const stop = async () => {
    while (stops.length) {
      const next = stops.pop()!;
      await next().catch((err) => log.warn({ err }, 'error while stopping'));
    }
  };
  try {
    await migrateOrThrow(database.db, log);
    // graphile-worker's own schema: the API queues tasks with its add_job().
    await prepareTaskQueue(database.pool, log);
    if (config.adminPassword) {
      const { ensureAdmin } = await import('../api/auth/auth.service.js');
      if (await ensureAdmin(database.db, config.adminPassword))
        log.info('created the super-admin "admin" (HERD_ADMIN_PASSWORD)');
    }
    const registry = createRegistry({ defaultMetrics: true });
    const liveView = new LiveView();
    const has = (role: Role) => options.roles.includes(role);
    const { store, rollups } = createStores(config, database.db, log, { registry, spool: has('ingest') });
    await store.start();
    stops.push(() => store.stop());
    await rollups.start();
    stops.push(() => rollups.stop());
    const events = new EventEmitter();
    events.setMaxListeners(0);
    // One driver per libvirt host in the process: with libvirt's test driver a second connection would be a
    // second, empty fake host, and real hosts should not get a connection per part either.
    let hostConnections: HostConnections | undefined;
    if (has('worker') || has('api')) {
      const { HostConnections, hostDriverFactory, stopTestDaemon } = await import(
        '../api/hosts/driver/index.js'
      );
      const connections = new HostConnections(log, hostDriverFactory({ tls: config.hosts.libvirtTls }));
      // Stops after the connections (stops run last first): the libvirtd herd may start for test:/// hosts.
      stops.push(() => stopTestDaemon());
      stops.push(() => connections.closeAll());
      hostConnections = connections;
    }
    const running: RunningHerd = { database, store, rollups, liveView, events, stop };
    // Every process that reads live figures reads, besides its own, those the ingest processes publish: an
    // `--only api` process has no live view of its own, and two ingest processes each hear part of the hosts.
    // A worker reads it for the balancer.
    let shared: SharedLiveView | undefined;
    if (has('ingest') || has('api') || has('worker')) {
      const view = new SharedLiveView({
        db: database.db,
        local: liveView,
        log: log.child({ part: 'live-share' }),
        self: has('ingest') ? processName() : undefined,
      });
      await view.refresh().catch((err) => log.warn({ err }, 'could not read the shared live view'));
      view.start();
      stops.push(() => view.stop());
      shared = view;
      running.sharedLiveView = view;
    }

    if (has('ingest')) {
      const [{ startIngest }, { GraphRecorder }, { writeHostsLastSeen }] = await Promise.all([
        import('../ingest/ingest-service.js'),
        import('../api/metrics/graph-recorder.js'),
        import('../api/hosts/last-seen.js'),
      ]);
      const ingest = await startIngest({ config, db: database.db, log, registry, store, liveView });
      stops.push(() => ingest.stop());
      running.ingest = ingest;
      const recorder = new GraphRecorder(liveView, store);
      recorder.start();
      stops.push(async () => recorder.stop());
      const publisher = new LivePublisher({
        db: database.db,
        liveView,
        log: log.child({ part: 'live-share' }),
        periodMs: config.hosts.livePublishMs,
      });
      publisher.start();
      stops.push(() => publisher.stop());
      if (!has('worker')) {
        // The host monitor runs with the worker; from a separate ingest process, last-seen goes by the database.
        const timer = setInterval(
          () => void writeHostsLastSeen(database.db, liveView).catch(() => undefined),
          5000,
        );
        stops.push(async () => clearInterval(timer));
      }
    }

    let alertFeed: Awaited<ReturnType<typeof startAlerting>>['feed'] | undefined;
    if (has('ingest') || has('worker')) {
      const [{ startAlerting }, { createForecastSource }] = await Promise.all([
        import('../api/alerts/start-alerting.js'),
        import('../api/forecast/forecast-source.js'),
      ]);
      const alerting = await startAlerting({
        db: database.db,
        log,
        liveView: has('ingest') ? shared : undefined,
        store,
        forecast: createForecastSource({ db: database.db, config, store, rollups }),
        evaluateEveryMs: config.alerting.evaluateSeconds * 1000,
        smtp: config.alerting.smtp,
        webhookAllow: config.alerting.webhookAllow,
        pgPool: database.pool,
      });
      stops.push(() => alerting.stop());
      alertFeed = alerting.feed;
      alertFeed.on('alert', (e) => events.emit('alert', e));
      alertFeed.on('enforcement', (e) => events.emit('enforcement', e));
      alertFeed.on('balancer', (e) => events.emit('live', balancerPublication(e)));
    } else if (has('api')) {
      // alert changes made by other herd processes, for the dashboard
      const { startAlertFeed } = await import('../api/alerts/alert-feed.js');
      const feed = await startAlertFeed({ pool: database.pool, log });
      stops.push(() => feed.stop());
      feed.feed.on('alert', (e) => events.emit('alert', e));
      feed.feed.on('enforcement', (e) => events.emit('enforcement', e));
      feed.feed.on('balancer', (e) => events.emit('live', balancerPublication(e)));
    }

    if (has('worker') && hostConnections) {
      const [
        { startWorker, DEFAULT_HEARTBEAT_MS },
        { createVmTaskHandler },
        { HostMonitor },
        { startQuotaEnforcer },
        { checkSaveDir },
        { CapacitySampler },
        { normaliseStoredHostUris },
      ] = await Promise.all([
        import('../api/tasks/worker.js'),
        import('../api/vms/vm-task-handler.js'),
        import('../api/hosts/host-monitor.js'),
        import('../api/quota-enforcer/quota-enforcer.js'),
        import('../api/vms/save-dir.js'),
        import('../api/forecast/capacity-sampler.js'),
        import('../api/hosts/stored-uris.js'),
      ]);
      await normaliseStoredHostUris(database.db, log);
      await checkSaveDir(database.db, config.hosts.saveDir, log);
      const worker = await startWorker({
        db: database.db,
        pgPool: database.pool,
        log,
        registry,
        handlers: {
          vm: createVmTaskHandler({
            hosts: hostConnections,
            saveDir: config.hosts.saveDir,
            pxeBaseUrl: config.pxe.baseUrl,
          }),
        },
        leaseMs: config.hosts.taskLeaseSeconds * 1000,
        // Several signs of life per lease: one late beat must not look like a dead worker.
        heartbeatMs: Math.min(DEFAULT_HEARTBEAT_MS, (config.hosts.taskLeaseSeconds * 1000) / 4),
      });
      stops.push(() => worker.stop());
      const monitor = new HostMonitor({
        db: database.db,
        connections: hostConnections,
        log,
        events,
        liveView: has('ingest') ? shared : undefined,
        intervalSeconds: config.hosts.heartbeatSeconds,
        domainEvents: true,
        registry,
      });
      monitor.start();
      stops.push(() => monitor.stop());
      if (config.hosts.mdns) {
        const { MdnsDiscovery } = await import('../api/hosts/mdns-discovery.js');
        const mdns = new MdnsDiscovery({ db: database.db, connections: hostConnections, log });
        mdns.start();
        stops.push(() => mdns.stop());
      }
      const enforcer = startQuotaEnforcer({
        db: database.db,
        log,
        intervalMs: config.alerting.quotaReconcileSeconds * 1000,
        feed: alertFeed,
      });
      stops.push(() => enforcer.stop());
      const { startBalancer } = await import('../api/balancer/balancer-loop.js');
      const balancer = startBalancer({
        db: database.db,
        log,
        liveView: shared,
        hostConnections,
        intervalMs: config.alerting.balancerSeconds * 1000,
      });
      stops.push(() => balancer.stop());
      // Allocations and quota usage have no history of their own: sampled into the metrics store for forecasts.
      const sampler = new CapacitySampler({ db: database.db, store, log }, config.rollups.stepSeconds);
      sampler.start();
      stops.push(() => sampler.stop());
    }

    if (has('api') && hostConnections) {
      const [{ buildApp }, { apiRoutes }, { dashboardRoutes }] = await Promise.all([
        import('../api/app.js'),
        import('../api/routes.js'),
        import('../dashboard/server/dashboard.routes.js'),
      ]);
      const app = await buildApp(
        {
          config,
          db: database.db,
          log,
          registry,
          store,
          rollups,
          liveView: shared,
          hostConnections,
          events,
          health: { influx: config.influx ? () => store.ping() : undefined, ingest: running.ingest?.healthy },
        },
        [...apiRoutes, dashboardRoutes],
      );
      stops.push(async () => {
        // In-flight requests may finish, but a client that stops reading cannot hold up the stop.
        const cut = setTimeout(() => app.server.closeAllConnections(), HTTP_CLOSE_GRACE_MS);
        try {
          await app.close();
        } finally {
          clearTimeout(cut);
        }
      });
      const address = await app.listen({ host: config.http.host, port: config.http.port });
      log.info({ address }, 'HTTP API listening');
      running.http = app;
      running.httpUrl = address;
    }
    return running;
  } catch (err) {
    await stop();
    throw err;
  }
}
