/**
 * Encoder for collectd's binary network protocol, packing value lists the way collectd's network plugin
 * does (network_write / add_to_buffer): a part is written only when its value differs from the previous
 * value list of the same packet (the state starts empty with each packet), TIME_HR and INTERVAL_HR are
 * used for times, and a packet is sent when the next value list does not fit. Notifications go out at
 * once, one per packet, as collectd sends them. Packets are optionally signed or encrypted as with
 * collectd's `SecurityLevel Sign` / `Encrypt`. Like collectd, the encoder keeps 106 bytes of every packet
 * free for the signature or encryption header whatever the security level, so with the same value lists
 * it cuts packets where collectd does (plain ones are at most 1346 bytes with the default size).
 *
 * Used by simulated hosts, tests and benchmarks; values that collectd could not send (names over 127
 * bytes, NUL in a string, integers out of range) throw a RangeError.
 */
import { randomBytes } from 'node:crypto';
import type { DsType, Notification, ValueList } from '../types.js';
import { aes256Ofb, hmacSha256, sha1 } from './packet-crypto.js';
import {
  DEFAULT_MAX_PACKET_SIZE,
  DS_TYPE_CODES,
  ENCRYPTION_HEADER_SIZE,
  HEADER_SIZE,
  HR_UNITS_PER_SECOND,
  IV_SIZE,
  MAX_MESSAGE_BYTES,
  MAX_NAME_BYTES,
  MAX_PACKET_SIZE,
  NUMBER_PART_SIZE,
  PART_ENCRYPTION,
  PART_HOST,
  PART_INTERVAL_HR,
  PART_MESSAGE,
  PART_PLUGIN,
  PART_PLUGIN_INSTANCE,
  PART_SEVERITY,
  PART_SIGNATURE,
  PART_TIME_HR,
  PART_TYPE,
  PART_TYPE_INSTANCE,
  PART_VALUES,
  SHA1_SIZE,
  SIGNATURE_HEADER_SIZE,
} from './parts.js';

export interface EncoderSecurity {
  level: 'sign' | 'encrypt';
  username: string;
  password: string;
}

export interface EncoderOptions {
  /** Called with each finished packet (a buffer of its own). */
  onPacket: (packet: Buffer) => void;
  /**
   * Largest packet, security header included: collectd's MaxPacketSize, default 1452, at most 65535.
   */
  maxPacketSize?: number;
  security?: EncoderSecurity;
  /** Source of encryption IVs (16 bytes); random by default, fixed in tests that compare bytes. */
  iv?: () => Buffer;
}

const TWO_32 = 2 ** 32;
const TWO_63 = 2 ** 63;
const TWO_64 = 2 ** 64;
/** The smallest value list: host, time, plugin, type of one byte each and one value. */
const SMALLEST_VALUE_LIST = 3 * 6 + NUMBER_PART_SIZE + 6 + 9;
/** collectd's BUFF_SIG_SIZE: room kept for the security header, which bounds the username's length. */
const SECURITY_RESERVE = 106;

export class PacketEncoder {
  private readonly onPacket: (packet: Buffer) => void;
  private readonly security: EncoderSecurity | undefined;
  private readonly username: Buffer;
  private readonly iv: () => Buffer;
  /** Room for parts once the security header is taken off. */
  private readonly budget: number;
  private readonly buffer: Buffer;
  private fill = 0;
  private host = '';
  private plugin = '';
  private pluginInstance = '';
  private type = '';
  private typeInstance = '';
  private time = 0;
  private interval = 0;

  constructor(options: EncoderOptions) {
    this.onPacket = options.onPacket;
    this.security = options.security;
    this.username = Buffer.from(this.security?.username ?? '', 'utf8');
    this.iv = options.iv ?? (() => randomBytes(IV_SIZE));
    const maxPacketSize = options.maxPacketSize ?? DEFAULT_MAX_PACKET_SIZE;
    if (!Number.isInteger(maxPacketSize) || maxPacketSize > MAX_PACKET_SIZE) {
      throw new RangeError(`maxPacketSize must be an integer up to ${MAX_PACKET_SIZE}, got ${maxPacketSize}`);
    }
    if (this.security !== undefined) {
      const overhead = securityHeaderSize(this.security) + this.username.length;
      if (this.username.length === 0 || this.username.includes(0) || overhead > SECURITY_RESERVE) {
        throw new RangeError(`username "${this.security.username}" is empty, too long or holds NUL bytes`);
      }
    }
    this.budget = maxPacketSize - SECURITY_RESERVE;
    if (this.budget < SMALLEST_VALUE_LIST) {
      throw new RangeError(`maxPacketSize ${maxPacketSize} leaves no room for a value list`);
    }
    this.buffer = Buffer.alloc(this.budget);
  }

  /** Bytes waiting in the current packet. */
  get pending(): number {
    return this.fill;
  }

  /** Adds a value list to the current packet, sending the packet first when the value list does not fit. */
  addValues(vl: ValueList): void {
    const count = vl.values.length;
    if (count === 0 || count !== vl.dsTypes.length || 6 + 9 * count > this.budget) {
      throw new RangeError(`value list ${vl.plugin}/${vl.type}: ${count} values, ${vl.dsTypes.length} types`);
    }
    // Checked before anything is written, so that a bad value list leaves the packet as it was.
    for (let i = 0; i < count; i++) checkValue(vl.dsTypes[i], vl.values[i]);
    let size = this.changedSize(vl);
    if (this.fill + size > this.budget) {
      this.flush();
      size = this.changedSize(vl);
      if (size > this.budget)
        throw new RangeError(`value list ${vl.plugin}/${vl.type} does not fit in a packet`);
    }
    const out = new PartWriter(this.buffer, this.fill);
    if (vl.host !== this.host) out.string(PART_HOST, vl.host);
    if (vl.time !== this.time) out.hrTime(PART_TIME_HR, vl.time);
    if (vl.interval !== this.interval) out.hrTime(PART_INTERVAL_HR, vl.interval);
    if (vl.plugin !== this.plugin) out.string(PART_PLUGIN, vl.plugin);
    if (vl.pluginInstance !== this.pluginInstance) out.string(PART_PLUGIN_INSTANCE, vl.pluginInstance);
    if (vl.type !== this.type) out.string(PART_TYPE, vl.type);
    if (vl.typeInstance !== this.typeInstance) out.string(PART_TYPE_INSTANCE, vl.typeInstance);
    out.values(vl.dsTypes, vl.values);
    this.fill = out.pos;
    this.remember(vl);
  }

  /** Sends a notification in a packet of its own (the pending value lists stay pending). */
  addNotification(n: Notification): void {
    const strings: Array<[number, string]> = [
      [PART_HOST, n.host],
      [PART_PLUGIN, n.plugin],
      [PART_PLUGIN_INSTANCE, n.pluginInstance],
      [PART_TYPE, n.type],
      [PART_TYPE_INSTANCE, n.typeInstance],
    ];
    let size = 2 * NUMBER_PART_SIZE + stringPartSize(n.message, MAX_MESSAGE_BYTES);
    for (const [, text] of strings) if (text !== '') size += stringPartSize(text, MAX_NAME_BYTES);
    if (size > this.budget) throw new RangeError('notification does not fit in a packet');
    const out = new PartWriter(Buffer.alloc(size), 0);
    out.hrTime(PART_TIME_HR, n.time);
    out.number(PART_SEVERITY, 0, n.severity);
    for (const [part, text] of strings) if (text !== '') out.string(part, text);
    out.string(PART_MESSAGE, n.message);
    this.onPacket(this.seal(out.buffer));
  }

  /** Sends the pending value lists, if any, and starts a new packet. */
  flush(): void {
    if (this.fill === 0) return;
    const payload = this.buffer.subarray(0, this.fill);
    this.onPacket(this.seal(this.security === undefined ? Buffer.from(payload) : payload));
    this.fill = 0;
    this.remember({
      host: '',
      plugin: '',
      pluginInstance: '',
      type: '',
      typeInstance: '',
      time: 0,
      interval: 0,
    });
  }

  /** The state the next value list of the packet is compared with. */
  private remember(vl: Omit<ValueList, 'dsTypes' | 'values'>) {
    this.host = vl.host;
    this.plugin = vl.plugin;
    this.pluginInstance = vl.pluginInstance;
    this.type = vl.type;
    this.typeInstance = vl.typeInstance;
    this.time = vl.time;
    this.interval = vl.interval;
  }

  private changedSize(vl: ValueList): number {
    let size = 6 + 9 * vl.values.length;
    if (vl.host !== this.host) size += stringPartSize(vl.host, MAX_NAME_BYTES);
    if (vl.time !== this.time) size += NUMBER_PART_SIZE;
    if (vl.interval !== this.interval) size += NUMBER_PART_SIZE;
    if (vl.plugin !== this.plugin) size += stringPartSize(vl.plugin, MAX_NAME_BYTES);
    if (vl.pluginInstance !== this.pluginInstance) size += stringPartSize(vl.pluginInstance, MAX_NAME_BYTES);
    if (vl.type !== this.type) size += stringPartSize(vl.type, MAX_NAME_BYTES);
    if (vl.typeInstance !== this.typeInstance) size += stringPartSize(vl.typeInstance, MAX_NAME_BYTES);
    return size;
  }

  private seal(payload: Buffer): Buffer {
    const security = this.security;
    if (security === undefined) return payload;
    const user = this.username;
    if (security.level === 'sign') {
      const packet = Buffer.alloc(SIGNATURE_HEADER_SIZE + user.length + payload.length);
      packet.writeUInt16BE(PART_SIGNATURE, 0);
      packet.writeUInt16BE(SIGNATURE_HEADER_SIZE + user.length, 2);
      user.copy(packet, SIGNATURE_HEADER_SIZE);
      payload.copy(packet, SIGNATURE_HEADER_SIZE + user.length);
      hmacSha256(security.password, packet.subarray(SIGNATURE_HEADER_SIZE)).copy(packet, HEADER_SIZE);
      return packet;
    }
    const iv = this.iv();
    if (iv.length !== IV_SIZE) throw new RangeError(`an IV has ${IV_SIZE} bytes, got ${iv.length}`);
    const header = ENCRYPTION_HEADER_SIZE - SHA1_SIZE + user.length;
    const packet = Buffer.alloc(header + SHA1_SIZE + payload.length);
    packet.writeUInt16BE(PART_ENCRYPTION, 0);
    packet.writeUInt16BE(packet.length, 2);
    packet.writeUInt16BE(user.length, 4);
    user.copy(packet, 6);
    iv.copy(packet, 6 + user.length);
    const plain = Buffer.concat([sha1(payload), payload]);
    aes256Ofb(security.password, iv, plain, true).copy(packet, header);
    return packet;
  }
}

/** Encodes value lists into packets, flushing at the end; for tests and fixtures. */
export function encodeValueLists(
  valueLists: Iterable<ValueList>,
  options: Omit<EncoderOptions, 'onPacket'> = {},
): Buffer[] {
  const packets: Buffer[] = [];
  const encoder = new PacketEncoder({ ...options, onPacket: (packet) => packets.push(packet) });
  for (const vl of valueLists) encoder.addValues(vl);
  encoder.flush();
  return packets;
}

function securityHeaderSize(security: EncoderSecurity): number {
  if (security.level === 'sign') return SIGNATURE_HEADER_SIZE;
  if (security.level === 'encrypt') return ENCRYPTION_HEADER_SIZE;
  throw new RangeError(`unknown security level "${security.level}"`);
}

function stringPartSize(text: string, maxBytes: number): number {
  const size = HEADER_SIZE + Buffer.byteLength(text, 'utf8') + 1;
  if (size - HEADER_SIZE > maxBytes)
    throw new RangeError(`"${text.slice(0, 40)}…" exceeds ${maxBytes - 1} bytes`);
  if (text.includes('\0')) throw new RangeError('strings cannot hold NUL characters');
  return size;
}

/** Writes parts at `pos`; sizes are checked by the caller. */
class PartWriter {
  constructor(
    readonly buffer: Buffer,
    public pos: number,
  ) {}

  string(part: number, text: string) {
    const buf = this.buffer;
    const written = buf.write(text, this.pos + HEADER_SIZE, 'utf8');
    const length = HEADER_SIZE + written + 1;
    buf.writeUInt16BE(part, this.pos);
    buf.writeUInt16BE(length, this.pos + 2);
    buf[this.pos + length - 1] = 0;
    this.pos += length;
  }

  number(part: number, high: number, low: number) {
    const buf = this.buffer;
    buf.writeUInt16BE(part, this.pos);
    buf.writeUInt16BE(NUMBER_PART_SIZE, this.pos + 2);
    buf.writeUInt32BE(high, this.pos + 4);
    buf.writeUInt32BE(low, this.pos + 8);
    this.pos += NUMBER_PART_SIZE;
  }

  hrTime(part: number, seconds: number) {
    if (!(seconds >= 0 && seconds < TWO_64 / HR_UNITS_PER_SECOND))
      throw new RangeError(`bad time ${seconds}`);
    const units = Math.round(seconds * HR_UNITS_PER_SECOND);
    const high = Math.floor(units / TWO_32);
    this.number(part, high, units - high * TWO_32);
  }

  values(dsTypes: readonly DsType[], values: ReadonlyArray<number | bigint>) {
    const buf = this.buffer;
    const count = values.length;
    buf.writeUInt16BE(PART_VALUES, this.pos);
    buf.writeUInt16BE(6 + 9 * count, this.pos + 2);
    buf.writeUInt16BE(count, this.pos + 4);
    const codes = this.pos + 6;
    let at = codes + count;
    for (let i = 0; i < count; i++, at += 8) {
      const dsType = dsTypes[i];
      buf[codes + i] = DS_TYPE_CODES[dsType];
      const value = values[i];
      if (dsType === 'gauge') buf.writeDoubleLE(Number(value), at);
      else if (typeof value === 'bigint') {
        if (dsType === 'derive') buf.writeBigInt64BE(value, at);
        else buf.writeBigUInt64BE(value, at);
      } else writeInteger(buf, at, value, dsType === 'derive');
    }
    this.pos = at;
  }
}

function checkValue(dsType: DsType, value: number | bigint) {
  if (!Object.hasOwn(DS_TYPE_CODES, dsType)) throw new RangeError(`unknown data source type "${dsType}"`);
  if (dsType === 'gauge') return;
  const signed = dsType === 'derive';
  const inRange =
    typeof value === 'bigint'
      ? signed
        ? value >= -(2n ** 63n) && value < 2n ** 63n
        : value >= 0n && value < 2n ** 64n
      : Number.isInteger(value) &&
        (signed ? value >= -TWO_63 && value < TWO_63 : value >= 0 && value < TWO_64);
  if (!inRange) throw new RangeError(`${value} is not a ${signed ? 'signed' : 'unsigned'} 64-bit ${dsType}`);
}

function writeInteger(buf: Buffer, at: number, value: number, signed: boolean) {
  const high = Math.floor(value / TWO_32);
  if (signed) buf.writeInt32BE(high, at);
  else buf.writeUInt32BE(high, at);
  buf.writeUInt32BE(value - high * TWO_32, at + 4);
}
