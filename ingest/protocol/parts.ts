/**
 * Wire constants of collectd's binary network protocol (collectd src/network.h), shared by the decoder
 * and the encoder.
 */
import type { DsType } from '../types.js';

export const PART_HOST = 0x0000;
export const PART_TIME = 0x0001;
export const PART_PLUGIN = 0x0002;
export const PART_PLUGIN_INSTANCE = 0x0003;
export const PART_TYPE = 0x0004;
export const PART_TYPE_INSTANCE = 0x0005;
export const PART_VALUES = 0x0006;
export const PART_INTERVAL = 0x0007;
export const PART_TIME_HR = 0x0008;
export const PART_INTERVAL_HR = 0x0009;
export const PART_MESSAGE = 0x0100;
export const PART_SEVERITY = 0x0101;
export const PART_SIGNATURE = 0x0200;
export const PART_ENCRYPTION = 0x0210;

/** Data source type codes in a VALUES part, in the order collectd numbers them. */
export const DS_COUNTER = 0;
export const DS_GAUGE = 1;
export const DS_DERIVE = 2;
export const DS_ABSOLUTE = 3;
export const DS_TYPE_NAMES: readonly DsType[] = ['counter', 'gauge', 'derive', 'absolute'];
export const DS_TYPE_CODES: Readonly<Record<DsType, number>> = {
  counter: DS_COUNTER,
  gauge: DS_GAUGE,
  derive: DS_DERIVE,
  absolute: DS_ABSOLUTE,
};

/** Part header: type and length, both uint16 big-endian; the length includes the header. */
export const HEADER_SIZE = 4;
/** A number part (TIME, TIME_HR, INTERVAL, INTERVAL_HR, SEVERITY): header and one uint64. */
export const NUMBER_PART_SIZE = 12;
/** Signature part without its username: header and HMAC-SHA-256. */
export const SIGNATURE_HEADER_SIZE = 36;
/** Encryption part without username and payload: header, username length, IV and SHA-1. */
export const ENCRYPTION_HEADER_SIZE = 42;
export const IV_SIZE = 16;
export const SHA1_SIZE = 20;

/**
 * collectd's buffers for names (DATA_MAX_NAME_LEN) and messages (NOTIF_MAX_MSG_LEN), NUL included: a
 * longer string part is rejected by collectd, so it is rejected here too.
 */
export const MAX_NAME_BYTES = 128;
export const MAX_MESSAGE_BYTES = 256;

/** collectd's default MaxPacketSize, and the largest a part length (uint16) can describe. */
export const DEFAULT_MAX_PACKET_SIZE = 1452;
export const MAX_PACKET_SIZE = 65535;

/** High-resolution times and intervals count units of 2^-30 s. */
export const HR_UNITS_PER_SECOND = 2 ** 30;

export type SecurityLevel = 'none' | 'sign' | 'encrypt';
export const SECURITY_LEVELS: readonly SecurityLevel[] = ['none', 'sign', 'encrypt'];
