/**
 * Decoder for collectd's binary network protocol, following collectd's own receiver (src/network.c,
 * parse_packet and friends) part by part:
 *
 * - A packet is a sequence of parts `type:u16be length:u16be payload`; the length includes the header.
 * - HOST, PLUGIN, PLUGIN_INSTANCE, TYPE, TYPE_INSTANCE (NUL-terminated strings), TIME / INTERVAL (seconds)
 *   and TIME_HR / INTERVAL_HR (2^-30 s), and SEVERITY set state that carries over to the following parts
 *   of the same packet; every packet (and every signed or encrypted payload) starts from empty strings
 *   and zeros. A VALUES part emits a value list with the current state; a MESSAGE part emits a
 *   notification. Unknown part types are skipped.
 * - As collectd does, a value list without time, host, plugin or type, and a notification without time,
 *   with an empty message or a severity other than FAILURE/WARNING/OKAY, are not emitted (counted as
 *   `incomplete`).
 * - SIGNATURE (HMAC-SHA-256 over the username and the rest of the packet, keyed with the password) covers
 *   everything after it. ENCRYPTION (AES-256-OFB, key SHA-256(password), IV in the part, SHA-1 of the
 *   plaintext first in the ciphertext) holds a payload parsed as a packet of its own; parts after it are
 *   parsed with the outer state.
 * - Security levels as collectd's server socket: `sign` ignores parts that are neither signed nor
 *   encrypted, `encrypt` ignores parts that are not encrypted (signature parts included); ignored parts
 *   are counted as `refused`. At `none` with users known, signatures are verified and encrypted parts
 *   decrypted; without users, signed packets are accepted unverified (collectd: "Will accept it") and
 *   encrypted ones cannot be read (an auth failure).
 *
 * Errors: a malformed packet throws DecodeError('malformed'), a wrong user, password or signature throws
 * DecodeError('auth'). Parts are handled as they come, like collectd, so value lists and notifications
 * before the offending part have already been emitted when a malformed part throws; signed and encrypted
 * content is verified before any of it is decoded, so an auth failure emits nothing of that content.
 * Where collectd merely stops at a truncated part or ignores trailing bytes, this decoder throws, so the
 * listener can count the packet as a parse error.
 */
import { timingSafeEqual } from 'node:crypto';
import type { DsType, Notification, Severity, ValueList } from '../types.js';
import type { UserLookup } from './auth-file.js';
import { authFailure, malformed } from './decode-error.js';
import { aes256Ofb, hmacSha256, sha1 } from './packet-crypto.js';
import {
  DS_ABSOLUTE,
  DS_COUNTER,
  DS_DERIVE,
  DS_GAUGE,
  DS_TYPE_NAMES,
  ENCRYPTION_HEADER_SIZE,
  HEADER_SIZE,
  HR_UNITS_PER_SECOND,
  IV_SIZE,
  MAX_MESSAGE_BYTES,
  MAX_NAME_BYTES,
  NUMBER_PART_SIZE,
  PART_ENCRYPTION,
  PART_HOST,
  PART_INTERVAL,
  PART_INTERVAL_HR,
  PART_MESSAGE,
  PART_PLUGIN,
  PART_PLUGIN_INSTANCE,
  PART_SEVERITY,
  PART_SIGNATURE,
  PART_TIME,
  PART_TIME_HR,
  PART_TYPE,
  PART_TYPE_INSTANCE,
  PART_VALUES,
  SECURITY_LEVELS,
  type SecurityLevel,
  SHA1_SIZE,
  SIGNATURE_HEADER_SIZE,
} from './parts.js';
import { StringCache } from './string-cache.js';

export interface DecoderOptions {
  /**
   * Called for every value list. The object and its arrays are reused for the next value list, so read
   * it before returning or copy it (`copyValueList`).
   */
  onValues: (vl: ValueList) => void;
  onNotification?: (n: Notification) => void;
  /** As collectd's `SecurityLevel` of a `<Listen>` block; default `none`. */
  securityLevel?: SecurityLevel;
  /** The auth file's users; required above level `none`, as collectd requires an `AuthFile`. */
  users?: UserLookup;
  /**
   * Counters, derives and absolutes as bigint, exact over their whole 64-bit range (for `herd decode`).
   * By default they are numbers, which lose low bits above 2^53.
   */
  exact?: boolean;
}

/** What one packet held. */
export interface DecodeSummary {
  valueLists: number;
  values: number;
  notifications: number;
  /** Parts ignored because the security level asks for signed or encrypted data. */
  refused: number;
  /** Value lists and notifications collectd would not dispatch (see the module comment). */
  incomplete: number;
  signed: boolean;
  encrypted: boolean;
}

const SIGNED = 1;
const ENCRYPTED = 2;
/**
 * Signed and encrypted parts nest (an encrypted payload is parsed as a packet); collectd has no limit,
 * but each level re-hashes or re-decrypts the rest of the packet, so a bound keeps hostile packets cheap.
 */
const MAX_NESTING = 4;

const TWO_32 = 2 ** 32;

export class PacketDecoder {
  private readonly onValues: (vl: ValueList) => void;
  private readonly onNotification: ((n: Notification) => void) | undefined;
  private readonly level: SecurityLevel;
  private readonly users: UserLookup | undefined;
  private readonly exact: boolean;
  private readonly strings = new StringCache();
  private readonly vl: ValueList = {
    host: '',
    plugin: '',
    pluginInstance: '',
    type: '',
    typeInstance: '',
    time: 0,
    interval: 0,
    dsTypes: [],
    values: [],
  };

  constructor(options: DecoderOptions) {
    this.onValues = options.onValues;
    this.onNotification = options.onNotification;
    this.level = options.securityLevel ?? 'none';
    this.users = options.users;
    this.exact = options.exact ?? false;
    if (!SECURITY_LEVELS.includes(this.level)) throw new TypeError(`unknown security level "${this.level}"`);
    if (this.level !== 'none' && this.users === undefined) {
      throw new TypeError(`security level "${this.level}" needs an auth file`);
    }
  }

  /** Decodes one packet, emitting as it goes; throws DecodeError (see the module comment). */
  decode(packet: Buffer): DecodeSummary {
    const summary: DecodeSummary = {
      valueLists: 0,
      values: 0,
      notifications: 0,
      refused: 0,
      incomplete: 0,
      signed: false,
      encrypted: false,
    };
    this.parse(packet, 0, packet.length, 0, 0, summary);
    return summary;
  }

  private parse(
    buf: Buffer,
    start: number,
    end: number,
    flags: number,
    depth: number,
    summary: DecodeSummary,
  ) {
    const level = this.level;
    const exact = this.exact;
    const strings = this.strings;
    let host = '';
    let plugin = '';
    let pluginInstance = '';
    let type = '';
    let typeInstance = '';
    let time = 0;
    let interval = 0;
    let severity = 0;
    let pos = start;

    while (end - pos > HEADER_SIZE) {
      const partType = (buf[pos] << 8) | buf[pos + 1];
      const length = (buf[pos + 2] << 8) | buf[pos + 3];
      if (length < HEADER_SIZE) throw malformed(`part at byte ${pos}: length ${length} is below 4`);
      if (length > end - pos) {
        throw malformed(
          `part 0x${hex(partType)} at byte ${pos}: length ${length} exceeds the ${end - pos} bytes left`,
        );
      }

      if (partType === PART_ENCRYPTION) {
        this.decrypt(buf, pos, length, flags, depth, summary);
        pos += length;
        continue;
      }
      if (level === 'encrypt' && (flags & ENCRYPTED) === 0) {
        summary.refused++;
        pos += length;
        continue;
      }
      if (partType === PART_SIGNATURE) {
        if (this.users !== undefined) {
          this.verify(buf, pos, length, end, flags, depth, summary);
          return;
        }
        // No user database: collectd accepts the rest unverified, as if it were unsigned.
        if (length <= SIGNATURE_HEADER_SIZE) throw malformed(`signature part at byte ${pos} is too short`);
        pos += length;
        continue;
      }
      if (level === 'sign' && flags === 0) {
        summary.refused++;
        pos += length;
        continue;
      }

      switch (partType) {
        case PART_VALUES: {
          if (length < 6) throw malformed(`values part at byte ${pos} is too short`);
          const count = (buf[pos + 4] << 8) | buf[pos + 5];
          if (count === 0) throw malformed(`values part at byte ${pos} holds no values`);
          if (length !== 6 + 9 * count) {
            throw malformed(`values part at byte ${pos}: length ${length} does not match ${count} values`);
          }
          const vl = this.vl;
          const dsTypes = vl.dsTypes;
          const values = vl.values;
          if (values.length !== count) {
            values.length = count;
            dsTypes.length = count;
          }
          const codes = pos + 6;
          let at = codes + count;
          for (let i = 0; i < count; i++, at += 8) {
            const code = buf[codes + i];
            if (code === DS_GAUGE) {
              values[i] = buf.readDoubleLE(at);
            } else if (code === DS_DERIVE) {
              values[i] = exact
                ? buf.readBigInt64BE(at)
                : buf.readInt32BE(at) * TWO_32 + buf.readUInt32BE(at + 4);
            } else if (code === DS_COUNTER || code === DS_ABSOLUTE) {
              values[i] = exact
                ? buf.readBigUInt64BE(at)
                : buf.readUInt32BE(at) * TWO_32 + buf.readUInt32BE(at + 4);
            } else {
              throw malformed(`values part at byte ${pos}: unknown data source type ${code}`);
            }
            dsTypes[i] = DS_TYPE_NAMES[code] as DsType;
          }
          if (time === 0 || host === '' || plugin === '' || type === '') {
            summary.incomplete++;
          } else {
            vl.host = host;
            vl.plugin = plugin;
            vl.pluginInstance = pluginInstance;
            vl.type = type;
            vl.typeInstance = typeInstance;
            vl.time = time;
            vl.interval = interval;
            summary.valueLists++;
            summary.values += count;
            this.onValues(vl);
          }
          break;
        }
        case PART_HOST:
          host = this.string(buf, pos, length, MAX_NAME_BYTES, strings);
          break;
        case PART_PLUGIN:
          plugin = this.string(buf, pos, length, MAX_NAME_BYTES, strings);
          break;
        case PART_PLUGIN_INSTANCE:
          pluginInstance = this.string(buf, pos, length, MAX_NAME_BYTES, strings);
          break;
        case PART_TYPE:
          type = this.string(buf, pos, length, MAX_NAME_BYTES, strings);
          break;
        case PART_TYPE_INSTANCE:
          typeInstance = this.string(buf, pos, length, MAX_NAME_BYTES, strings);
          break;
        case PART_TIME_HR:
          checkNumberPart(pos, length);
          time = buf.readUInt32BE(pos + 4) * 4 + buf.readUInt32BE(pos + 8) / HR_UNITS_PER_SECOND;
          break;
        case PART_INTERVAL_HR:
          checkNumberPart(pos, length);
          interval = buf.readUInt32BE(pos + 4) * 4 + buf.readUInt32BE(pos + 8) / HR_UNITS_PER_SECOND;
          break;
        case PART_TIME:
          checkNumberPart(pos, length);
          time = buf.readUInt32BE(pos + 4) * TWO_32 + buf.readUInt32BE(pos + 8);
          break;
        case PART_INTERVAL:
          checkNumberPart(pos, length);
          interval = buf.readUInt32BE(pos + 4) * TWO_32 + buf.readUInt32BE(pos + 8);
          break;
        case PART_SEVERITY:
          checkNumberPart(pos, length);
          // collectd keeps `(int) value`: the low 32 bits.
          severity = buf.readInt32BE(pos + 8);
          break;
        case PART_MESSAGE: {
          const message = this.string(buf, pos, length, MAX_MESSAGE_BYTES, undefined);
          if (time === 0 || message === '' || (severity !== 1 && severity !== 2 && severity !== 4)) {
            summary.incomplete++;
          } else {
            summary.notifications++;
            this.onNotification?.({
              host,
              plugin,
              pluginInstance,
              type,
              typeInstance,
              time,
              severity: severity as Severity,
              message,
            });
          }
          break;
        }
      }
      pos += length;
    }
    if (pos !== end) throw malformed(`${end - pos} trailing bytes after the last part (truncated packet?)`);
  }

  private string(
    buf: Buffer,
    pos: number,
    length: number,
    maxBytes: number,
    cache: StringCache | undefined,
  ): string {
    if (length <= HEADER_SIZE) throw malformed(`string part at byte ${pos} is empty`);
    if (length - HEADER_SIZE > maxBytes) {
      throw malformed(
        `string part at byte ${pos}: ${length - HEADER_SIZE} bytes exceed collectd's ${maxBytes}`,
      );
    }
    const last = pos + length - 1;
    if (buf[last] !== 0) throw malformed(`string part at byte ${pos} does not end with a NUL byte`);
    // Like a C string, the value stops at the first NUL.
    const from = pos + HEADER_SIZE;
    let stop = from;
    while (buf[stop] !== 0) stop++;
    return cache === undefined ? buf.toString('utf8', from, stop) : cache.get(buf, from, stop);
  }

  private verify(
    buf: Buffer,
    pos: number,
    length: number,
    end: number,
    flags: number,
    depth: number,
    summary: DecodeSummary,
  ) {
    if (length <= SIGNATURE_HEADER_SIZE) throw malformed(`signature part at byte ${pos} is too short`);
    if (depth >= MAX_NESTING) throw malformed(`signed/encrypted parts nested deeper than ${MAX_NESTING}`);
    const username = cString(buf, pos + SIGNATURE_HEADER_SIZE, pos + length);
    const password = this.users?.password(username);
    if (password === undefined) throw authFailure(`signed by unknown user "${username}"`);
    const expected = hmacSha256(password, buf.subarray(pos + SIGNATURE_HEADER_SIZE, end));
    if (!timingSafeEqual(expected, buf.subarray(pos + HEADER_SIZE, pos + SIGNATURE_HEADER_SIZE))) {
      throw authFailure(`signature of user "${username}" does not match (wrong password?)`);
    }
    summary.signed = true;
    this.parse(buf, pos + length, end, flags | SIGNED, depth + 1, summary);
  }

  private decrypt(
    buf: Buffer,
    pos: number,
    length: number,
    flags: number,
    depth: number,
    summary: DecodeSummary,
  ) {
    if (length <= ENCRYPTION_HEADER_SIZE) throw malformed(`encryption part at byte ${pos} is too short`);
    const usernameLength = (buf[pos + 4] << 8) | buf[pos + 5];
    if (usernameLength === 0 || usernameLength > length - (ENCRYPTION_HEADER_SIZE + 1)) {
      throw malformed(`encryption part at byte ${pos}: invalid username length ${usernameLength}`);
    }
    if (depth >= MAX_NESTING) throw malformed(`signed/encrypted parts nested deeper than ${MAX_NESTING}`);
    const usernameAt = pos + 6;
    const username = cString(buf, usernameAt, usernameAt + usernameLength);
    if (this.users === undefined)
      throw authFailure(`encrypted by user "${username}" but no auth file is set`);
    const password = this.users.password(username);
    if (password === undefined) throw authFailure(`encrypted by unknown user "${username}"`);
    const ivAt = usernameAt + usernameLength;
    const iv = buf.subarray(ivAt, ivAt + IV_SIZE);
    const plain = aes256Ofb(password, iv, buf.subarray(ivAt + IV_SIZE, pos + length), false);
    const checksum = sha1(plain.subarray(SHA1_SIZE));
    if (!timingSafeEqual(checksum, plain.subarray(0, SHA1_SIZE))) {
      throw authFailure(`checksum of data encrypted by user "${username}" does not match (wrong password?)`);
    }
    summary.encrypted = true;
    this.parse(plain, SHA1_SIZE, plain.length, flags | ENCRYPTED, depth + 1, summary);
  }
}

function checkNumberPart(pos: number, length: number) {
  if (length !== NUMBER_PART_SIZE) throw malformed(`number part at byte ${pos}: length ${length} is not 12`);
}

function cString(buf: Buffer, from: number, to: number): string {
  const nul = buf.indexOf(0, from);
  return buf.toString('utf8', from, nul >= 0 && nul < to ? nul : to);
}

function hex(n: number): string {
  return n.toString(16).padStart(4, '0');
}

/** A copy of a value list that outlives the decoder's callback. */
export function copyValueList(vl: ValueList): ValueList {
  return { ...vl, dsTypes: vl.dsTypes.slice(), values: vl.values.slice() };
}
