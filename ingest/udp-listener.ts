import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import type { Logger } from '../lib/log.js';

/** How long one read of /proc/net/udp answers kernelStats() (a scrape reads several series at once). */
const KERNEL_STATS_REUSE_MS = 100;

export interface UdpListenerOptions {
  host: string;
  port: number;
  /** Requested socket receive buffer (bytes); the kernel may cap it (net.core.rmem_max). */
  rcvbuf: number;
  /** Packets held between the socket and the parser; beyond it, packets are dropped and counted. */
  maxQueue?: number;
  /** Packets handed to the consumer per turn of the event loop, so the socket is read in between. */
  batch?: number;
}

export interface UdpListenerStats {
  packets: number;
  bytes: number;
  queueDropped: number;
  queued: number;
}

/**
 * collectd's transport: UDP datagrams up to 64 KiB on IPv4 and IPv6. The receive side only reads and queues;
 * the consumer parses later in bounded batches, so a burst never stalls the socket.
 * `0.0.0.0` listens on both families (an IPv4 socket and an IPv6-only socket on the same port).
 */
export class UdpListener {
  private sockets: dgram.Socket[] = [];
  private queue: Buffer[] = [];
  /** The sender's address of each queued packet, for the consumer's log lines. */
  private sources: string[] = [];
  private head = 0;
  private scheduled = false;
  private readonly counts = { packets: 0, bytes: 0, queueDropped: 0 };
  private kernelRead?: { at: number; stats: { drops: number; receiveQueueBytes: number } | undefined };
  readonly addresses: Array<{ address: string; port: number; family: string; rcvbuf: number }> = [];

  constructor(
    private readonly options: UdpListenerOptions,
    private readonly consume: (packet: Buffer, source: string) => void,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    if (this.sockets.length > 0) return;
    const { host } = this.options;
    const binds: Array<{ type: 'udp4' | 'udp6'; address: string; optional: boolean }> =
      host === '0.0.0.0'
        ? [
            { type: 'udp4', address: '0.0.0.0', optional: false },
            { type: 'udp6', address: '::', optional: true },
          ]
        : [{ type: net.isIPv6(host) ? 'udp6' : 'udp4', address: host, optional: false }];
    let port = this.options.port;
    try {
      for (const b of binds) {
        try {
          const socket = await this.bind(b.type, b.address, port);
          // With port 0, the second family binds the port the kernel chose for the first.
          port = socket.address().port;
        } catch (err) {
          if (!b.optional) throw err;
          this.log.warn({ err, address: b.address }, 'collectd listener: IPv6 not available');
        }
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  private bind(type: 'udp4' | 'udp6', address: string, port: number): Promise<dgram.Socket> {
    return new Promise((resolve, reject) => {
      const socket = dgram.createSocket({ type, ipv6Only: type === 'udp6', reuseAddr: false });
      socket.once('error', reject);
      socket.on('message', (msg, rinfo) => this.receive(msg, rinfo.address));
      socket.bind({ address, port }, () => {
        socket.off('error', reject);
        socket.on('error', (err) => this.log.error({ err }, 'collectd listener socket error'));
        try {
          socket.setRecvBufferSize(this.options.rcvbuf);
        } catch (err) {
          this.log.warn({ err, requested: this.options.rcvbuf }, 'could not set the UDP receive buffer');
        }
        const bound = socket.address();
        const rcvbuf = socket.getRecvBufferSize();
        this.addresses.push({ address: bound.address, port: bound.port, family: bound.family, rcvbuf });
        this.log.info(
          {
            address: bound.address,
            port: bound.port,
            rcvbufRequested: this.options.rcvbuf,
            rcvbufEffective: rcvbuf,
          },
          'collectd listener bound',
        );
        this.sockets.push(socket);
        resolve(socket);
      });
    });
  }

  private receive(msg: Buffer, source: string): void {
    this.counts.packets++;
    this.counts.bytes += msg.length;
    if (this.queue.length - this.head >= (this.options.maxQueue ?? 100_000)) {
      this.counts.queueDropped++;
      return;
    }
    this.queue.push(msg);
    this.sources.push(source);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.drain());
    }
  }

  private drain(): void {
    this.scheduled = false;
    const end = Math.min(this.queue.length, this.head + (this.options.batch ?? 256));
    while (this.head < end) {
      const packet = this.queue[this.head];
      const source = this.sources[this.head];
      this.queue[this.head++] = undefined as unknown as Buffer;
      this.consume(packet, source);
    }
    if (this.head >= this.queue.length) {
      this.queue = [];
      this.sources = [];
      this.head = 0;
    } else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.drain());
    }
  }

  /** Parses everything still queued (used on stop and by tests). */
  drainAll(): void {
    while (this.head < this.queue.length) this.drain();
  }

  async stop(): Promise<void> {
    const sockets = this.sockets;
    this.sockets = [];
    await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    this.drainAll();
  }

  /** The port actually bound (useful with port 0). */
  get port(): number {
    return this.addresses[0]?.port ?? this.options.port;
  }

  stats(): UdpListenerStats {
    return { ...this.counts, queued: this.queue.length - this.head };
  }

  /**
   * What the kernel says of the listener's sockets (/proc/self/net/udp and udp6, matched by local port):
   * datagrams it dropped because the receive buffer was full (never seen by herd, so not in `stats()`), and
   * bytes waiting in the buffers. Undefined where /proc is not there.
   */
  kernelStats(): { drops: number; receiveQueueBytes: number } | undefined {
    // One read serves every series of a scrape (they ask within the same moment).
    const now = Date.now();
    if (this.kernelRead && now - this.kernelRead.at < KERNEL_STATS_REUSE_MS) return this.kernelRead.stats;
    const stats = this.readKernelStats();
    this.kernelRead = { at: now, stats };
    return stats;
  }

  private readKernelStats(): { drops: number; receiveQueueBytes: number } | undefined {
    if (this.addresses.length === 0) return { drops: 0, receiveQueueBytes: 0 };
    const ports = new Set(this.addresses.map((a) => a.port.toString(16).toUpperCase().padStart(4, '0')));
    let drops = 0;
    let receiveQueueBytes = 0;
    let read = false;
    for (const file of ['/proc/self/net/udp', '/proc/self/net/udp6']) {
      let text: string;
      try {
        text = readFileSync(file, 'latin1');
      } catch {
        continue;
      }
      read = true;
      for (const line of text.split('\n').slice(1)) {
        // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ref pointer drops
        const f = line.trim().split(/\s+/);
        if (f.length < 13 || !ports.has(f[1].slice(f[1].lastIndexOf(':') + 1))) continue;
        receiveQueueBytes += Number.parseInt(f[4].split(':')[1], 16) || 0;
        drops += Number(f[12]) || 0;
      }
    }
    return read ? { drops, receiveQueueBytes } : undefined;
  }
}
