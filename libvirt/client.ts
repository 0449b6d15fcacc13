/**
 * One connection to a libvirt daemon over its RPC protocol: one byte stream, any number of concurrent calls told
 * apart by serial number, a timeout on each call, libvirt's errors as `LibvirtError`, keepalive both ways, and
 * pushed domain events. Opening does what libvirt's remote driver does: AUTH_LIST (only `none` is supported),
 * CONNECT_SUPPORTS_FEATURE(PROGRAM_KEEPALIVE), CONNECT_OPEN with the URI's name.
 *
 * Dead-host bound: when nothing at all arrives for `keepalive.intervalMs` the client sends a PING, and when
 * nothing arrives for `intervalMs × count` (default 5 s × 3 = 15 s) the connection is declared dead: closed, every
 * call under way failed with "connection closed due to keepalive timeout". A host that answers pings but not a
 * call is bounded by the call's own timeout instead.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import {
  decodeRemoteError,
  ErrorCode,
  ErrorDomain,
  encodePacket,
  LibvirtError,
  MessageStatus,
  MessageType,
  type Packet,
  PacketDecoder,
  ProtocolError,
} from './packet.js';
import {
  AuthType,
  type DomainEvent,
  type DomainRef,
  decodeDomainEvent,
  decodeRet,
  encodeArgs,
  Feature,
  KEEPALIVE_PROGRAM,
  KEEPALIVE_PROTOCOL_VERSION,
  KeepaliveProc,
  P,
  type Procedure,
  REMOTE_PROGRAM,
  REMOTE_PROTOCOL_VERSION,
} from './procedures.js';
import { type Dialed, type Dialer, dialerFor, type TransportOptions } from './transport.js';
import { parseLibvirtUri } from './uri.js';
import { XdrError } from './xdr.js';

export interface KeepaliveOptions {
  /** Silence after which a PING is sent (default 5000 ms, libvirt's `keepalive_interval`). */
  intervalMs: number;
  /** Intervals of silence after which the peer is dead (default 3: dead after 15 s). */
  count: number;
}

export interface ClientOptions extends TransportOptions {
  /** Default per-call timeout (default 60 s); each call may pass its own. */
  callTimeoutMs?: number;
  /** false: no keepalive (not recommended). */
  keepalive?: Partial<KeepaliveOptions> | false;
  /** CONNECT_OPEN flags (1: read-only). */
  openFlags?: number;
  /** Dial with this instead of the URI's transport (tests, custom tunnels). */
  dialer?: Dialer;
}

export interface CallOptions {
  /** ms; 0: no timeout (the keepalive still bounds a dead host). */
  timeoutMs?: number;
}

export interface ClientStats {
  callsSent: number;
  repliesReceived: number;
  /** Replies whose call had already timed out, or that name no call. */
  unmatchedReplies: number;
  eventsReceived: number;
  /** Messages of a program or procedure this client does not know, and stream packets: counted, dropped. */
  unknownMessages: number;
  /** Event messages whose body did not decode. */
  malformedEvents: number;
  /** Events an 'event' listener threw on (the error is kept in `lastListenerError`). */
  listenerErrors: number;
  pingsSent: number;
  pingsAnswered: number;
}

interface Pending {
  proc: Procedure<any, any>;
  resolve: (body: Uint8Array) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout | null;
}

export const DEFAULT_KEEPALIVE: KeepaliveOptions = { intervalMs: 5000, count: 3 };
export const DEFAULT_CALL_TIMEOUT_MS = 60_000;
const CONNECT_TIMEOUT_MS = 15_000;
const CLOSE_TIMEOUT_MS = 2000;

/** The C library's text for the socket errors a peer causes, as libvirt prints them. */
function strerror(err: NodeJS.ErrnoException): string {
  const texts: Record<string, string> = {
    ECONNRESET: 'Connection reset by peer',
    EPIPE: 'Broken pipe',
    ETIMEDOUT: 'Connection timed out',
    EHOSTUNREACH: 'No route to host',
  };
  return (err.code && texts[err.code]) || err.message;
}

function rpcError(code: number, message: string): LibvirtError {
  return new LibvirtError({ code, domain: ErrorDomain.RPC, message, local: true });
}

export class LibvirtClient extends EventEmitter<{ event: [DomainEvent]; close: [LibvirtError | null] }> {
  readonly stats: ClientStats = {
    callsSent: 0,
    repliesReceived: 0,
    unmatchedReplies: 0,
    eventsReceived: 0,
    unknownMessages: 0,
    malformedEvents: 0,
    listenerErrors: 0,
    pingsSent: 0,
    pingsAnswered: 0,
  };
  private readonly decoder = new PacketDecoder();
  private readonly pending = new Map<number, Pending>();
  private serial = 0;
  private closedWith: LibvirtError | null | undefined = undefined;
  private lastReceived = Date.now();
  private lastPing = 0;
  private keepaliveTimer: NodeJS.Timeout | null = null;
  private keepalive: KeepaliveOptions | null = null;
  private readonly callTimeoutMs: number;
  private readonly writeQueue: Buffer[] = [];
  private writing = false;
  /** What the last throwing 'event' listener threw. */
  lastListenerError: unknown = null;
  /** The daemon handles callback-based domain events (libvirt ≥ 1.2.1). */
  eventCallbacks = false;

  private constructor(
    private readonly dialed: Dialed,
    options: ClientOptions,
  ) {
    super();
    this.callTimeoutMs = options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    const stream: Duplex = dialed.stream;
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    // A dialer may have paused the stream (TLS reads its check byte first).
    stream.resume();
    stream.on('error', (err: NodeJS.ErrnoException) =>
      this.fail(rpcError(ErrorCode.SYSTEM_ERROR, this.withDiagnostics(`Cannot recv data: ${strerror(err)}`))),
    );
    stream.on('close', () =>
      this.fail(
        rpcError(
          ErrorCode.SYSTEM_ERROR,
          this.withDiagnostics('End of file while reading data: Input/output error'),
        ),
      ),
    );
  }

  /** Dials `uri`, authenticates, opens the connection. */
  static async connect(uri: string, options: ClientOptions = {}): Promise<LibvirtClient> {
    const parsed = parseLibvirtUri(uri);
    const dialer = options.dialer ?? dialerFor(parsed, options);
    const connectTimeout = options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), connectTimeout);
    let dialed: Dialed;
    try {
      dialed = await dialer.dial(abort.signal);
    } finally {
      clearTimeout(timer);
    }
    const client = new LibvirtClient(dialed, options);
    try {
      await client.open(parsed.name, options, connectTimeout);
    } catch (err) {
      client.destroy(err instanceof LibvirtError ? err : null);
      throw err;
    }
    return client;
  }

  private async open(name: string, options: ClientOptions, timeoutMs: number): Promise<void> {
    const auth = await this.call(P.authList, undefined, { timeoutMs });
    if (auth.length > 0 && !auth.includes(AuthType.NONE)) {
      const names = auth.map((a) =>
        a === AuthType.SASL ? 'sasl' : a === AuthType.POLKIT ? 'polkit' : `type ${a}`,
      );
      throw new LibvirtError({
        code: ErrorCode.AUTH_FAILED,
        domain: ErrorDomain.RPC,
        local: true,
        message: `authentication failed: the daemon requires ${names.join(', ')} authentication, which herd's client does not support (configure auth "none" on this socket, e.g. auth_tcp/auth_tls/auth_unix_rw)`,
      });
    }
    if (options.keepalive !== false) {
      if (await this.call(P.connectSupportsFeature, Feature.PROGRAM_KEEPALIVE, { timeoutMs })) {
        this.keepalive = { ...DEFAULT_KEEPALIVE, ...(options.keepalive ?? {}) };
        this.scheduleKeepalive();
      }
    }
    await this.call(P.connectOpen, { name, flags: options.openFlags ?? 0 }, { timeoutMs });
    this.eventCallbacks = await this.call(P.connectSupportsFeature, Feature.REMOTE_EVENT_CALLBACK, {
      timeoutMs,
    });
  }

  /** Where this client is connected. */
  get peer(): string {
    return this.dialed.peer;
  }

  get closed(): boolean {
    return this.closedWith !== undefined;
  }

  /** Calls `proc` with `args`; resolves with its decoded reply. */
  call<A, R>(proc: Procedure<A, R>, args: A, options: CallOptions = {}): Promise<R> {
    if (this.closedWith !== undefined) {
      return Promise.reject(
        this.closedWith ?? rpcError(ErrorCode.INTERNAL_ERROR, 'internal error: client socket is closed'),
      );
    }
    let body: Buffer;
    try {
      body = encodeArgs(proc, args);
    } catch (err) {
      return Promise.reject(
        err instanceof XdrError
          ? new LibvirtError({
              code: ErrorCode.INVALID_ARG,
              domain: ErrorDomain.RPC,
              local: true,
              message: `invalid argument: ${proc.name}: ${err.message}`,
            })
          : err,
      );
    }
    this.serial = (this.serial + 1) >>> 0 || 1;
    const serial = this.serial;
    const timeoutMs = options.timeoutMs ?? this.callTimeoutMs;
    return new Promise<Uint8Array>((resolve, reject) => {
      const entry: Pending = { proc, resolve, reject, timer: null };
      if (timeoutMs > 0) {
        entry.timer = setTimeout(() => {
          this.pending.delete(serial);
          reject(
            rpcError(
              ErrorCode.OPERATION_TIMEOUT,
              `Timed out during operation: no reply to ${proc.name} from ${this.peer} within ${timeoutMs} ms`,
            ),
          );
        }, timeoutMs);
      }
      this.pending.set(serial, entry);
      this.send(
        {
          program: REMOTE_PROGRAM,
          version: REMOTE_PROTOCOL_VERSION,
          procedure: proc.proc,
          type: MessageType.CALL,
          serial,
          status: MessageStatus.OK,
        },
        body,
      );
      this.stats.callsSent++;
    }).then((reply) => {
      try {
        return decodeRet(proc, reply);
      } catch (err) {
        if (!(err instanceof XdrError)) throw err;
        throw rpcError(ErrorCode.RPC, `RPC error: malformed reply to ${proc.name}: ${err.message}`);
      }
    });
  }

  /**
   * Registers for one kind of domain event (`DomainEventId`), for every domain or one; the events arrive as
   * 'event' with the returned callback id.
   */
  async registerDomainEvent(eventId: number, dom: DomainRef | null = null): Promise<number> {
    if (!this.eventCallbacks) {
      throw new LibvirtError({
        code: ErrorCode.NO_SUPPORT,
        domain: ErrorDomain.RPC,
        local: true,
        message: 'this function is not supported by the connection driver: callback-based domain events',
      });
    }
    return this.call(P.connectDomainEventCallbackRegisterAny, { eventId, dom });
  }

  deregisterDomainEvent(callbackId: number): Promise<void> {
    return this.call(P.connectDomainEventCallbackDeregisterAny, callbackId);
  }

  /** Sends CONNECT_CLOSE (briefly waiting for its reply), then closes the stream. */
  async close(): Promise<void> {
    if (this.closedWith !== undefined) return;
    await this.call(P.connectClose, undefined, { timeoutMs: CLOSE_TIMEOUT_MS }).catch(() => undefined);
    this.destroy(null);
  }

  /** Closes at once; calls under way fail with `err` (or "client socket is closed"). */
  destroy(err: LibvirtError | null): void {
    if (this.closedWith !== undefined) return;
    this.closedWith = err;
    if (this.keepaliveTimer) clearTimeout(this.keepaliveTimer);
    const reason = err ?? rpcError(ErrorCode.INTERNAL_ERROR, 'internal error: client socket is closed');
    for (const [serial, p] of this.pending) {
      if (p.timer) clearTimeout(p.timer);
      this.pending.delete(serial);
      p.reject(reason);
    }
    this.dialed.stream.destroy();
    this.emit('close', err);
  }

  private fail(err: LibvirtError): void {
    this.destroy(err);
  }

  private withDiagnostics(message: string): string {
    const extra = this.dialed.diagnostics?.();
    return extra ? `${message}: ${extra}` : message;
  }

  private send(header: Packet['header'], body?: Uint8Array): void {
    const packet = encodePacket(header, body);
    if (!this.dialed.oneMessagePerWrite) {
      this.dialed.stream.write(packet);
      return;
    }
    this.writeQueue.push(packet);
    this.flushOneByOne();
  }

  private flushOneByOne(): void {
    if (this.writing || this.closedWith !== undefined) return;
    const next = this.writeQueue.shift();
    if (!next) return;
    this.writing = true;
    this.dialed.stream.write(next, () => {
      this.writing = false;
      this.flushOneByOne();
    });
  }

  private onData(chunk: Buffer): void {
    if (this.closedWith !== undefined) return;
    this.lastReceived = Date.now();
    let packets: Packet[];
    try {
      packets = this.decoder.push(chunk);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.fail(rpcError(ErrorCode.RPC, `RPC error: ${err.message}`));
      return;
    }
    for (const packet of packets) {
      if (this.closedWith !== undefined) return;
      this.dispatch(packet);
    }
  }

  private dispatch({ header, body }: Packet): void {
    if (header.program === KEEPALIVE_PROGRAM) {
      if (header.type === MessageType.MESSAGE && header.procedure === KeepaliveProc.PING) {
        this.stats.pingsAnswered++;
        this.send({
          program: KEEPALIVE_PROGRAM,
          version: KEEPALIVE_PROTOCOL_VERSION,
          procedure: KeepaliveProc.PONG,
          type: MessageType.MESSAGE,
          serial: 0,
          status: MessageStatus.OK,
        });
      } else if (header.procedure !== KeepaliveProc.PONG) this.stats.unknownMessages++;
      return;
    }
    if (header.program !== REMOTE_PROGRAM || header.version !== REMOTE_PROTOCOL_VERSION) {
      this.stats.unknownMessages++;
      return;
    }
    if (header.type === MessageType.REPLY) {
      const p = this.pending.get(header.serial);
      if (!p || p.proc.proc !== header.procedure) {
        this.stats.unmatchedReplies++;
        return;
      }
      this.pending.delete(header.serial);
      if (p.timer) clearTimeout(p.timer);
      this.stats.repliesReceived++;
      if (header.status === MessageStatus.OK) p.resolve(body);
      else if (header.status === MessageStatus.ERROR) p.reject(decodeRemoteError(body));
      else
        p.reject(rpcError(ErrorCode.RPC, `RPC error: reply to ${p.proc.name} has status ${header.status}`));
      return;
    }
    if (header.type === MessageType.MESSAGE) {
      let event: DomainEvent | null;
      try {
        event = decodeDomainEvent(header.procedure, body);
      } catch (err) {
        if (!(err instanceof XdrError)) throw err;
        this.stats.malformedEvents++;
        return;
      }
      if (!event) {
        this.stats.unknownMessages++;
        return;
      }
      this.stats.eventsReceived++;
      // Each listener on its own: a subscriber's bug must not take the connection, or the others, down with it.
      for (const listener of this.listeners('event')) {
        try {
          listener(event);
        } catch (err) {
          this.stats.listenerErrors++;
          this.lastListenerError = err;
        }
      }
      return;
    }
    this.stats.unknownMessages++;
  }

  private scheduleKeepalive(): void {
    const ka = this.keepalive;
    if (!ka || this.closedWith !== undefined) return;
    const now = Date.now();
    const silence = now - this.lastReceived;
    const deadAfter = ka.intervalMs * ka.count;
    if (silence >= deadAfter) {
      this.fail(
        rpcError(
          ErrorCode.INTERNAL_ERROR,
          `internal error: connection closed due to keepalive timeout (no answer from ${this.peer} for ${silence} ms)`,
        ),
      );
      return;
    }
    if (silence >= ka.intervalMs && now - this.lastPing >= ka.intervalMs) {
      this.lastPing = now;
      this.stats.pingsSent++;
      this.send({
        program: KEEPALIVE_PROGRAM,
        version: KEEPALIVE_PROTOCOL_VERSION,
        procedure: KeepaliveProc.PING,
        type: MessageType.MESSAGE,
        serial: 0,
        status: MessageStatus.OK,
      });
    }
    const nextPing = Math.max(this.lastReceived, this.lastPing) + ka.intervalMs;
    const dead = this.lastReceived + deadAfter;
    this.keepaliveTimer = setTimeout(
      () => this.scheduleKeepalive(),
      Math.max(10, Math.min(nextPing, dead) - now),
    );
    this.keepaliveTimer.unref?.();
  }
}
