/**
 * XDR (RFC 4506) as libvirt's RPC protocol uses it: big-endian 4-byte units, 8-byte hypers, strings and opaque
 * data padded to 4 bytes, optionals as a 4-byte "present" flag, variable arrays as a 4-byte count. Every read is
 * bounds-checked against the buffer and against the declared maximum of the field (the `<N>` of the .x file), so
 * a hostile or broken peer gets an `XdrError`, never an out-of-range read or an allocation it chose the size of.
 */

/** A field that does not fit: truncated input, a length beyond the field's maximum, a bad discriminant. */
export class XdrError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'XdrError';
  }
}

const pad4 = (n: number) => (4 - (n % 4)) % 4;

/** libvirt's `VIR_TYPED_PARAM_*`: the discriminant of `remote_typed_param_value`. */
export const TypedParamType = {
  INT: 1,
  UINT: 2,
  LLONG: 3,
  ULLONG: 4,
  DOUBLE: 5,
  BOOLEAN: 6,
  STRING: 7,
} as const;

/** A typed parameter (`remote_typed_param`) with its value in the JavaScript type that holds it exactly. */
export type TypedParam =
  | { field: string; type: 'int' | 'uint'; value: number }
  | { field: string; type: 'llong' | 'ullong'; value: bigint }
  | { field: string; type: 'double'; value: number }
  | { field: string; type: 'boolean'; value: boolean }
  | { field: string; type: 'string'; value: string };

/** The field-name and string limit of remote_protocol.x (`REMOTE_STRING_MAX`). */
export const REMOTE_STRING_MAX = 4_194_304;

export class XdrReader {
  private pos = 0;
  private readonly view: DataView;
  private readonly buf: Buffer;

  constructor(bytes: Uint8Array) {
    this.buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.buf.byteLength - this.pos;
  }

  private need(n: number, what: string): number {
    if (n > this.buf.byteLength - this.pos) {
      throw new XdrError(
        `truncated ${what}: ${n} bytes needed at offset ${this.pos}, ${this.remaining} left`,
      );
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }

  int(): number {
    return this.view.getInt32(this.need(4, 'int'));
  }

  uint(): number {
    return this.view.getUint32(this.need(4, 'unsigned int'));
  }

  hyper(): bigint {
    return this.view.getBigInt64(this.need(8, 'hyper'));
  }

  uhyper(): bigint {
    return this.view.getBigUint64(this.need(8, 'unsigned hyper'));
  }

  /** An unsigned hyper that must fit a double exactly (byte counts, memory sizes); larger ones are an error. */
  uhyperNumber(): number {
    const v = this.uhyper();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new XdrError(`unsigned hyper ${v} beyond 2^53`);
    return Number(v);
  }

  bool(): boolean {
    const v = this.int();
    if (v !== 0 && v !== 1) throw new XdrError(`bool is ${v}, not 0 or 1`);
    return v === 1;
  }

  double(): number {
    return this.view.getFloat64(this.need(8, 'double'));
  }

  /** A count or length prefix, checked against `max` before anything of that size is read. */
  private length(max: number, what: string): number {
    const n = this.uint();
    if (n > max) throw new XdrError(`${what} of ${n} exceeds its maximum ${max}`);
    return n;
  }

  opaqueFixed(n: number): Uint8Array {
    const at = this.need(n + pad4(n), `opaque[${n}]`);
    return this.buf.subarray(at, at + n);
  }

  opaque(max: number): Uint8Array {
    return this.opaqueFixed(this.length(max, 'opaque'));
  }

  string(max = REMOTE_STRING_MAX): string {
    const n = this.length(max, 'string');
    const at = this.need(n + pad4(n), 'string');
    return this.buf.toString('utf8', at, at + n);
  }

  /** `remote_uuid`: 16 bytes, in libvirt's text form. */
  uuid(): string {
    const at = this.need(16, 'uuid');
    const h = this.buf.toString('hex', at, at + 16);
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
  }

  /** An optional (`T *`): a 4-byte flag, then the value when it is 1. */
  optional<T>(read: (r: XdrReader) => T): T | null {
    return this.bool() ? read(this) : null;
  }

  /** A variable array `T name<max>`; each element takes at least 4 bytes, so a lying count fails early. */
  array<T>(max: number, read: (r: XdrReader) => T): T[] {
    const n = this.length(max, 'array');
    if (n * 4 > this.remaining)
      throw new XdrError(`array of ${n} elements cannot fit in ${this.remaining} bytes`);
    const out: T[] = new Array(n);
    for (let i = 0; i < n; i++) out[i] = read(this);
    return out;
  }

  /** A fixed array `char name[n]` (each char a 4-byte unit on the wire), as the text up to its first NUL. */
  charArray(n: number): string {
    const bytes: number[] = [];
    for (let i = 0; i < n; i++) {
      const c = this.int() & 0xff;
      if (c === 0) {
        this.need(4 * (n - i - 1), 'char array');
        break;
      }
      bytes.push(c);
    }
    return Buffer.from(bytes).toString('latin1');
  }

  typedParam(): TypedParam {
    const field = this.string();
    const type = this.int();
    switch (type) {
      case TypedParamType.INT:
        return { field, type: 'int', value: this.int() };
      case TypedParamType.UINT:
        return { field, type: 'uint', value: this.uint() };
      case TypedParamType.LLONG:
        return { field, type: 'llong', value: this.hyper() };
      case TypedParamType.ULLONG:
        return { field, type: 'ullong', value: this.uhyper() };
      case TypedParamType.DOUBLE:
        return { field, type: 'double', value: this.double() };
      case TypedParamType.BOOLEAN:
        return { field, type: 'boolean', value: this.int() !== 0 };
      case TypedParamType.STRING:
        return { field, type: 'string', value: this.string() };
      default:
        throw new XdrError(`typed parameter ${JSON.stringify(field)} has unknown type ${type}`);
    }
  }

  typedParams(max: number): TypedParam[] {
    return this.array(max, (r) => r.typedParam());
  }

  /** Fails unless every byte was read: a reply longer than its type is as wrong as a shorter one. */
  end(): void {
    if (this.remaining !== 0) throw new XdrError(`${this.remaining} bytes left over after the last field`);
  }
}

export class XdrWriter {
  private buf: Buffer;
  private pos = 0;

  constructor(initial = 256) {
    this.buf = Buffer.alloc(initial);
  }

  private room(n: number): number {
    if (this.pos + n > this.buf.length) {
      const next = Buffer.alloc(Math.max(this.buf.length * 2, this.pos + n));
      this.buf.copy(next, 0, 0, this.pos);
      this.buf = next;
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }

  get length(): number {
    return this.pos;
  }

  int(v: number): this {
    if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff)
      throw new XdrError(`int out of range: ${v}`);
    const at = this.room(4);
    this.buf.writeInt32BE(v, at);
    return this;
  }

  uint(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff)
      throw new XdrError(`unsigned int out of range: ${v}`);
    const at = this.room(4);
    this.buf.writeUInt32BE(v, at);
    return this;
  }

  hyper(v: bigint): this {
    if (v < -(1n << 63n) || v >= 1n << 63n) throw new XdrError(`hyper out of range: ${v}`);
    const at = this.room(8);
    this.buf.writeBigInt64BE(v, at);
    return this;
  }

  uhyper(v: bigint | number): this {
    const b = BigInt(v);
    if (b < 0n || b >= 1n << 64n) throw new XdrError(`unsigned hyper out of range: ${v}`);
    const at = this.room(8);
    this.buf.writeBigUInt64BE(b, at);
    return this;
  }

  bool(v: boolean): this {
    return this.int(v ? 1 : 0);
  }

  double(v: number): this {
    const at = this.room(8);
    this.buf.writeDoubleBE(v, at);
    return this;
  }

  opaqueFixed(bytes: Uint8Array, n = bytes.length): this {
    if (bytes.length !== n) throw new XdrError(`opaque[${n}] given ${bytes.length} bytes`);
    const at = this.room(n + pad4(n));
    this.buf.set(bytes, at);
    this.buf.fill(0, at + n, at + n + pad4(n));
    return this;
  }

  opaque(bytes: Uint8Array, max: number): this {
    if (bytes.length > max) throw new XdrError(`opaque of ${bytes.length} bytes exceeds its maximum ${max}`);
    this.uint(bytes.length);
    return this.opaqueFixed(bytes);
  }

  string(s: string, max = REMOTE_STRING_MAX): this {
    const bytes = Buffer.from(s, 'utf8');
    if (bytes.length > max) throw new XdrError(`string of ${bytes.length} bytes exceeds its maximum ${max}`);
    this.uint(bytes.length);
    return this.opaqueFixed(bytes);
  }

  uuid(uuid: string): this {
    return this.opaqueFixed(uuidToBytes(uuid), 16);
  }

  optional<T>(v: T | null | undefined, write: (w: XdrWriter, v: T) => void): this {
    if (v === null || v === undefined) return this.bool(false);
    this.bool(true);
    write(this, v);
    return this;
  }

  array<T>(items: readonly T[], max: number, write: (w: XdrWriter, v: T) => void): this {
    if (items.length > max)
      throw new XdrError(`array of ${items.length} elements exceeds its maximum ${max}`);
    this.uint(items.length);
    for (const item of items) write(this, item);
    return this;
  }

  typedParam(p: TypedParam): this {
    this.string(p.field);
    switch (p.type) {
      case 'int':
        return this.int(TypedParamType.INT).int(p.value);
      case 'uint':
        return this.int(TypedParamType.UINT).uint(p.value);
      case 'llong':
        return this.int(TypedParamType.LLONG).hyper(p.value);
      case 'ullong':
        return this.int(TypedParamType.ULLONG).uhyper(p.value);
      case 'double':
        return this.int(TypedParamType.DOUBLE).double(p.value);
      case 'boolean':
        return this.int(TypedParamType.BOOLEAN).int(p.value ? 1 : 0);
      case 'string':
        return this.int(TypedParamType.STRING).string(p.value);
    }
  }

  typedParams(params: readonly TypedParam[], max: number): this {
    return this.array(params, max, (w, p) => w.typedParam(p));
  }

  /** The bytes written so far (a view, valid until the next write). */
  bytes(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

const UUID_RE = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

export function uuidToBytes(uuid: string): Uint8Array {
  if (!UUID_RE.test(uuid)) throw new XdrError(`not a UUID: ${JSON.stringify(uuid)}`);
  return Buffer.from(uuid.replace(/-/g, ''), 'hex');
}

export function uuidToString(bytes: Uint8Array): string {
  const h = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** Typed parameters as a record, for reading stats by field name. */
export function paramsRecord(params: readonly TypedParam[]): Record<string, TypedParam['value']> {
  const out: Record<string, TypedParam['value']> = {};
  for (const p of params) out[p.field] = p.value;
  return out;
}
