/**
 * Test helpers for alerting (not used by herd itself): a clock tests move by hand, collectd traffic sent with
 * herd's own encoder over real UDP into the real ingest pipeline, and a webhook receiver.
 */
import dgram from 'node:dgram';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { EventSink } from '../../ingest/event-sink.js';
import { LiveView } from '../../ingest/live-view.js';
import { IngestPipeline } from '../../ingest/pipeline.js';
import { PacketEncoder } from '../../ingest/protocol/encoder.js';
import { DEFAULT_TYPES_DB, loadTypesDb } from '../../ingest/protocol/types-db.js';
import type { Notification } from '../../ingest/types.js';
import { UdpListener } from '../../ingest/udp-listener.js';
import type { Logger } from '../../lib/log.js';
import { createRegistry } from '../../lib/metrics.js';
import { waitFor } from '../../lib/testing/wait.js';
import type { Database } from '../../schema/db.js';

export class ManualClock {
  constructor(public now = Date.parse('2026-11-23T12:00:00Z')) {}
  readonly read = () => this.now;
  advance(seconds: number): void {
    this.now += seconds * 1000;
  }
}

/**
 * A collectd sender and herd's listener → pipeline → live view, on loopback; the live view reads `clock`.
 * With `db`, notifications go on into its events table through ingest's EventSink, as in herd.
 */
export async function collectdLoop(clock: () => number, log: Logger, options: { db?: Database } = {}) {
  const liveView = new LiveView(clock);
  const events = options.db ? new EventSink(options.db, log, { flushMs: 20 }) : undefined;
  events?.start();
  const pipeline = new IngestPipeline({
    typesDb: await loadTypesDb([DEFAULT_TYPES_DB]),
    liveView,
    writePoints: () => undefined,
    onNotification: (n) => events?.push(n),
    multiValue: 'split',
    securityLevel: 'none',
    registry: createRegistry(),
    log,
  });
  const listener = new UdpListener(
    { host: '127.0.0.1', port: 0, rcvbuf: 1024 * 1024 },
    (p) => pipeline.handle(p),
    log,
  );
  await listener.start();
  const socket = dgram.createSocket('udp4');
  const sent: Promise<void>[] = [];
  const encoder = new PacketEncoder({
    onPacket: (packet) =>
      sent.push(
        new Promise((resolve, reject) =>
          socket.send(packet, listener.port, '127.0.0.1', (e) => (e ? reject(e) : resolve())),
        ),
      ),
  });
  const sendRaw = (packet: Buffer) =>
    new Promise<void>((resolve, reject) =>
      socket.send(packet, listener.port, '127.0.0.1', (e) => (e ? reject(e) : resolve())),
    );
  return {
    liveView,
    events,
    /**
     * Sends packets as they are (e.g. a capture re-timed by `replayAt`), one datagram each, and waits until the
     * pipeline has read them and the events table holds the notifications among them.
     */
    async sendPackets(packets: Buffer[]) {
      const before = pipeline.stats().packets;
      for (const packet of packets) await sendRaw(packet);
      await waitFor(() => pipeline.stats().packets >= before + packets.length, 5_000, 5);
      await events?.flush();
    },
    /** Sends one notification encoded by herd's encoder and waits until it is stored. */
    async notify(n: Notification) {
      encoder.addNotification(n);
      await Promise.all(sent.splice(0));
      const stored = events?.stats().stored ?? 0;
      await waitFor(() => (events?.stats().stored ?? 0) > stored || events === undefined, 5_000, 5);
    },
    /** Sends one collectd interval's load (and memory when given) for `host`, and waits until herd has it. */
    async report(host: string, figures: { load5: number; memoryUsedMiB?: number; memoryFreeMiB?: number }) {
      const time = clock() / 1000;
      const base = { host, pluginInstance: '', typeInstance: '', time, interval: 10 };
      encoder.addValues({
        ...base,
        plugin: 'load',
        type: 'load',
        dsTypes: ['gauge', 'gauge', 'gauge'],
        values: [figures.load5, figures.load5, figures.load5],
      });
      if (figures.memoryUsedMiB !== undefined) {
        for (const [state, mib] of [
          ['used', figures.memoryUsedMiB],
          ['free', figures.memoryFreeMiB ?? 0],
        ] as const) {
          encoder.addValues({
            ...base,
            plugin: 'memory',
            type: 'memory',
            typeInstance: state,
            dsTypes: ['gauge'],
            values: [mib * 1024 * 1024],
          });
        }
      }
      encoder.flush();
      await Promise.all(sent.splice(0));
      await waitFor(() => liveView.get(host, 'load', '', 'load', '')?.time === time, 5_000, 5);
    },
    async close() {
      socket.close();
      await listener.stop();
      await events?.stop();
    },
  };
}

export interface ReceivedRequest {
  headers: http.IncomingHttpHeaders;
  body: string;
  json: any;
}

/** An HTTP server collecting what it is sent; answers the queued statuses first, then 200. */
export async function webhookReceiver() {
  const requests: ReceivedRequest[] = [];
  const statuses: number[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      requests.push({ headers: req.headers, body, json: JSON.parse(body) });
      res.writeHead(statuses.shift() ?? 200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    requests,
    failNext(...codes: number[]) {
      statuses.push(...codes);
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
