import os from 'node:os';
import type { Config } from '../lib/config.js';
import type { Logger } from '../lib/log.js';
import { Counter, Gauge, type Registry } from '../lib/metrics.js';
import type { Database } from '../schema/db.js';
import { EventSink } from './event-sink.js';
import type { LiveView } from './live-view.js';
import { IngestPipeline } from './pipeline.js';
import { AuthFile } from './protocol/auth-file.js';
import { DEFAULT_TYPES_DB, loadTypesDb } from './protocol/types-db.js';
import type { MetricsStore } from './store/metrics-store.js';
import { UdpListener } from './udp-listener.js';

export interface IngestService {
  listener: UdpListener;
  events: EventSink;
  pipeline: IngestPipeline;
  /** The UDP port bound (for port 0 in tests). */
  port: number;
  healthy(): boolean;
  stop(): Promise<void>;
}

export interface IngestDeps {
  config: Config;
  db: Database;
  log: Logger;
  registry: Registry;
  store: MetricsStore;
  liveView: LiveView;
  /** How often herd's own counters are written to the metrics store (ms). */
  selfMetricsMs?: number;
}

/** Starts the collectd listener and its pipeline into the metrics store, the live view and the events table. */
export async function startIngest(deps: IngestDeps): Promise<IngestService> {
  const { config, log, registry, store, liveView } = deps;
  const ingestLog = log.child({ part: 'ingest' });
  const typesDb = await loadTypesDb([DEFAULT_TYPES_DB, ...config.collectd.typesDb]);
  const authFile = config.collectd.authFile ? await AuthFile.load(config.collectd.authFile) : undefined;
  const events = new EventSink(deps.db, ingestLog);
  const pipeline = new IngestPipeline({
    typesDb,
    liveView,
    writePoints: (points) => store.write(points),
    onNotification: (n) => events.push(n),
    multiValue: config.collectd.multiValue,
    securityLevel: config.collectd.securityLevel,
    users: authFile,
    registry,
    log: ingestLog,
  });
  const listener = new UdpListener(
    { host: config.collectd.host, port: config.collectd.port, rcvbuf: config.collectd.rcvbuf },
    (packet, source) => pipeline.handle(packet, source),
    ingestLog,
  );

  const listenerGauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  listenerGauge('herd_collectd_packets_received', 'UDP packets received', () => listener.stats().packets);
  listenerGauge('herd_collectd_bytes_received', 'UDP bytes received', () => listener.stats().bytes);
  listenerGauge(
    'herd_collectd_queue_dropped',
    'packets dropped: parse queue full',
    () => listener.stats().queueDropped,
  );
  listenerGauge('herd_collectd_queue_depth', 'packets waiting to be parsed', () => listener.stats().queued);
  new Counter({
    name: 'herd_collectd_kernel_drops_total',
    help: 'datagrams the kernel dropped at the listener sockets, receive buffer full (/proc/net/udp); never seen by herd',
    registers: [registry],
    collect() {
      const kernel = listener.kernelStats();
      this.reset();
      if (kernel) this.inc(kernel.drops);
    },
  });
  listenerGauge(
    'herd_collectd_socket_queue_bytes',
    'bytes waiting in the listener sockets receive buffers (/proc/net/udp)',
    () => listener.kernelStats()?.receiveQueueBytes ?? 0,
  );
  listenerGauge('herd_events_stored', 'collectd notifications stored as events', () => events.stats().stored);
  listenerGauge('herd_events_dropped', 'collectd notifications dropped', () => events.stats().dropped);

  events.start();
  await listener.start();
  const exposure = unauthenticatedExposure(config.collectd.host, config.collectd.securityLevel);
  if (exposure) ingestLog.warn({ host: config.collectd.host, securityLevel: 'none' }, exposure);

  const refreshAuth = authFile
    ? setInterval(() => void authFile.refresh().catch(() => undefined), 10_000)
    : undefined;
  const selfMetrics = setInterval(
    () =>
      void writeSelfMetrics().catch((err) =>
        ingestLog.warn({ err: (err as Error).message }, "could not read herd's own counters"),
      ),
    deps.selfMetricsMs ?? 10_000,
  );
  refreshAuth?.unref();
  selfMetrics.unref();
  const hostname = os.hostname();

  /** herd's own counters go to the metrics store like any host's metrics (measurement `herd`). */
  async function writeSelfMetrics() {
    const fields: Record<string, number> = {};
    for (const metric of await registry.getMetricsAsJSON()) {
      if (
        !metric.name.startsWith('herd_collectd_') &&
        !metric.name.startsWith('herd_store_') &&
        !metric.name.startsWith('herd_events_')
      )
        continue;
      const sample = metric.values.find((v) => Object.keys(v.labels).length === 0);
      if (sample && Number.isFinite(sample.value)) fields[metric.name.replace(/^herd_/, '')] = sample.value;
    }
    if (Object.keys(fields).length > 0) {
      store.write([
        { measurement: 'herd', tags: { host: hostname, part: 'ingest' }, fields, time: Date.now() / 1000 },
      ]);
    }
  }

  let stopped = false;
  return {
    listener,
    events,
    pipeline,
    port: listener.port,
    healthy: () => !stopped && listener.addresses.length > 0,
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(refreshAuth);
      clearInterval(selfMetrics);
      await listener.stop();
      await events.stop();
    },
  };
}

/**
 * What an operator must hear when the listener accepts unsigned packets from beyond this machine: anyone who
 * reaches the port can report metrics for any host, and those feed alerting, quota and placement.
 */
export function unauthenticatedExposure(host: string, securityLevel: string): string | undefined {
  if (securityLevel !== 'none') return undefined;
  const loopback = host === 'localhost' || host === '::1' || /^127\./.test(host);
  if (loopback) return undefined;
  return (
    `SECURITY: the collectd listener on ${host} accepts unsigned packets from anyone who can reach it; ` +
    'they can report metrics for any host, which feed alerting, quota and placement. ' +
    'Set HERD_COLLECTD_SECURITY_LEVEL=sign (or encrypt) with HERD_COLLECTD_AUTH_FILE, or listen on 127.0.0.1 only'
  );
}
