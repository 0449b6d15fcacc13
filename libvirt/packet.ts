/**
 * libvirt's RPC framing (src/rpc/virnetprotocol.x): each message is a 4-byte length that counts itself, a 24-byte
 * header `{program, version, procedure, type, serial, status}` and an XDR body. A message is at most
 * `VIR_NET_MESSAGE_MAX` (16 MiB) without its length word. Failed calls carry a `remote_error` body, decoded here
 * into a `LibvirtError` with libvirt's code, domain, level and message (the text virsh prints after "error: ").
 */
import { REMOTE_STRING_MAX, XdrError, XdrReader, XdrWriter } from './xdr.js';

/** `VIR_NET_MESSAGE_MAX`: the largest message, header and body, not counting the 4-byte length. */
export const MESSAGE_MAX = 16_777_216;
export const HEADER_SIZE = 24;
const LEN_SIZE = 4;

export const MessageType = {
  CALL: 0,
  REPLY: 1,
  MESSAGE: 2,
  STREAM: 3,
  CALL_WITH_FDS: 4,
  REPLY_WITH_FDS: 5,
} as const;

export const MessageStatus = { OK: 0, ERROR: 1, CONTINUE: 2 } as const;

export interface Header {
  program: number;
  version: number;
  procedure: number;
  type: number;
  serial: number;
  status: number;
}

export interface Packet {
  header: Header;
  /** The XDR body (a view into the decoder's buffer: copy it to keep it past the next chunk). */
  body: Uint8Array;
}

/** A peer that breaks the framing: the connection cannot be trusted past this and is closed. */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

/** Encodes one message: length, header, body. */
export function encodePacket(header: Header, body: Uint8Array = new Uint8Array(0)): Buffer {
  const total = LEN_SIZE + HEADER_SIZE + body.length;
  if (total - LEN_SIZE > MESSAGE_MAX) {
    throw new ProtocolError(`message of ${total - LEN_SIZE} bytes exceeds libvirt's maximum ${MESSAGE_MAX}`);
  }
  const out = Buffer.alloc(total);
  out.writeUInt32BE(total, 0);
  out.writeUInt32BE(header.program >>> 0, 4);
  out.writeUInt32BE(header.version >>> 0, 8);
  out.writeInt32BE(header.procedure, 12);
  out.writeInt32BE(header.type, 16);
  out.writeUInt32BE(header.serial >>> 0, 20);
  out.writeInt32BE(header.status, 24);
  out.set(body, LEN_SIZE + HEADER_SIZE);
  return out;
}

export function decodeHeader(buf: Uint8Array): Header {
  const r = new XdrReader(buf);
  return {
    program: r.uint(),
    version: r.uint(),
    procedure: r.int(),
    type: r.int(),
    serial: r.uint(),
    status: r.int(),
  };
}

/**
 * Splits a byte stream into packets. Chunks may cut a packet anywhere; a length below the header size or above
 * 16 MiB is a `ProtocolError` (the stream cannot be resynchronised after it). Buffers at most one packet.
 */
export class PacketDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failed: ProtocolError | null = null;

  /** Bytes held for a packet not yet complete. */
  get pending(): number {
    return this.buffered;
  }

  push(chunk: Uint8Array): Packet[] {
    if (this.failed) throw this.failed;
    if (chunk.length > 0) {
      this.chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      this.buffered += chunk.length;
    }
    const out: Packet[] = [];
    for (;;) {
      if (this.buffered < LEN_SIZE) break;
      const head = this.peek(LEN_SIZE);
      const length = head.readUInt32BE(0);
      if (length < LEN_SIZE + HEADER_SIZE || length - LEN_SIZE > MESSAGE_MAX) {
        this.failed = new ProtocolError(
          `packet length ${length} outside ${LEN_SIZE + HEADER_SIZE}..${MESSAGE_MAX + LEN_SIZE}`,
        );
        this.chunks = [];
        this.buffered = 0;
        throw this.failed;
      }
      if (this.buffered < length) break;
      const whole = this.take(length);
      out.push({
        header: decodeHeader(whole.subarray(LEN_SIZE, LEN_SIZE + HEADER_SIZE)),
        body: whole.subarray(LEN_SIZE + HEADER_SIZE),
      });
    }
    return out;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0].length >= n) return this.chunks[0];
    this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0];
  }

  private take(n: number): Buffer {
    const first = this.chunks[0];
    let whole: Buffer;
    if (first.length >= n) {
      whole = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      const all = Buffer.concat(this.chunks);
      whole = all.subarray(0, n);
      this.chunks = all.length > n ? [all.subarray(n)] : [];
    }
    this.buffered -= n;
    return whole;
  }
}

/** libvirt's `virErrorDomain` values this client names (virterror.h). */
export const ErrorDomain = {
  NONE: 0,
  QEMU: 10,
  RPC: 7,
  TEST: 12,
  REMOTE: 13,
  STORAGE: 18,
  DOMAIN: 20,
  SECRET: 30,
  AUTH: 46,
  SSH: 50,
} as const;

/** libvirt's `virErrorNumber` values herd tells apart (virterror.h). */
export const ErrorCode = {
  INTERNAL_ERROR: 1,
  NO_SUPPORT: 3,
  NO_CONNECT: 5,
  INVALID_ARG: 8,
  OPERATION_FAILED: 9,
  XML_ERROR: 27,
  DOM_EXIST: 28,
  OPERATION_DENIED: 29,
  SYSTEM_ERROR: 38,
  RPC: 39,
  NO_DOMAIN: 42,
  AUTH_FAILED: 45,
  NO_STORAGE_POOL: 49,
  NO_STORAGE_VOL: 50,
  OPERATION_INVALID: 55,
  NO_SECRET: 66,
  CONFIG_UNSUPPORTED: 67,
  OPERATION_TIMEOUT: 68,
  ARGUMENT_UNSUPPORTED: 74,
  OPERATION_ABORTED: 78,
  OPERATION_UNSUPPORTED: 84,
  AUTH_UNAVAILABLE: 94,
} as const;

/** `virErrorLevel`. */
export const ErrorLevel = { NONE: 0, WARNING: 1, ERROR: 2 } as const;

/**
 * An error libvirt reported (a `remote_error` from the daemon), or one this client raised the way libvirt's own
 * client would (domain RPC: connection closed, keepalive timeout, call timeout). `message` is what virsh prints.
 */
export class LibvirtError extends Error {
  readonly code: number;
  readonly domain: number;
  readonly level: number;
  /** The domain the error names, when libvirt filled `dom` in. */
  readonly domainName: string | null;
  /** Raised in this client, not sent by the daemon. */
  readonly local: boolean;

  constructor(fields: {
    code: number;
    domain: number;
    message: string;
    level?: number;
    domainName?: string | null;
    local?: boolean;
  }) {
    super(fields.message);
    this.name = 'LibvirtError';
    this.code = fields.code;
    this.domain = fields.domain;
    this.level = fields.level ?? ErrorLevel.ERROR;
    this.domainName = fields.domainName ?? null;
    this.local = fields.local ?? false;
  }
}

function nonnullDomainName(r: XdrReader): string {
  const name = r.string();
  r.opaqueFixed(16);
  r.int();
  return name;
}

/** Decodes a `remote_error` body. */
export function decodeRemoteError(body: Uint8Array): LibvirtError {
  const r = new XdrReader(body);
  try {
    const code = r.int();
    const domain = r.int();
    const message = r.optional((x) => x.string(REMOTE_STRING_MAX));
    const level = r.int();
    const domainName = r.optional(nonnullDomainName);
    r.optional((x) => x.string());
    r.optional((x) => x.string());
    r.optional((x) => x.string());
    r.int();
    r.int();
    r.optional((x) => {
      x.string();
      x.opaqueFixed(16);
    });
    return new LibvirtError({
      code,
      domain,
      level,
      domainName,
      message: message ?? `unknown error (code ${code}, domain ${domain})`,
    });
  } catch (err) {
    if (!(err instanceof XdrError)) throw err;
    return new LibvirtError({
      code: ErrorCode.RPC,
      domain: ErrorDomain.RPC,
      local: true,
      message: `RPC error: undecodable error reply (${err.message})`,
    });
  }
}

/** Encodes a `remote_error` (for tests and for a fake peer). */
export function encodeRemoteError(e: {
  code: number;
  domain: number;
  message: string | null;
  level?: number;
}) {
  const w = new XdrWriter();
  w.int(e.code).int(e.domain);
  w.optional(e.message, (x, m) => x.string(m));
  w.int(e.level ?? ErrorLevel.ERROR);
  w.bool(false).bool(false).bool(false).bool(false).int(0).int(0).bool(false);
  return w.bytes();
}
