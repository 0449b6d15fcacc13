/**
 * The captured collectd packets in ../shared/fixtures/collectd (beside the checkout, in CI too) and what
 * collectd recorded for them, for tests and the decode benchmark.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hmacSha256 } from './packet-crypto.js';
import {
  HEADER_SIZE,
  HR_UNITS_PER_SECOND,
  PART_ENCRYPTION,
  PART_HOST,
  PART_SIGNATURE,
  PART_TIME,
  PART_TIME_HR,
  SIGNATURE_HEADER_SIZE,
} from './parts.js';

export const FIXTURES_DIR = fileURLToPath(new URL('../../../shared/fixtures/collectd/', import.meta.url));
export const FIXTURE_TYPES_DB = join(FIXTURES_DIR, 'types.db');
export const FIXTURE_FOLDERS = ['plain', 'virt', 'virt-uuid', 'signed', 'notifications'] as const;
export type FixtureFolder = (typeof FIXTURE_FOLDERS)[number];
/** The credentials of the signed capture (signed/auth_file). */
export const FIXTURE_USER = { username: 'alice', password: 's3cret' };

/**
 * How many days older than it is the suite takes the capture to be (HERD_TEST_FIXTURE_AGE_DAYS, default 0):
 * every packet and record read here is moved back that far, as if the suite ran that long after the capture.
 * `npm test` runs the tests that replay captured packets once more with 30, to prove none depends on the date.
 */
const AGE_SECONDS = Math.round(Number(process.env.HERD_TEST_FIXTURE_AGE_DAYS ?? 0) * 86_400);
if (!Number.isFinite(AGE_SECONDS)) throw new Error('HERD_TEST_FIXTURE_AGE_DAYS must be a number of days');

export interface FixturePacket {
  file: string;
  path: string;
  bytes: Buffer;
}

/** A record of expected.jsonl, as collectd's python writer dumped it. */
export type ExpectedRecord = ExpectedValues | ExpectedNotification;

export interface ExpectedValues {
  kind: 'values';
  host: string;
  plugin: string;
  plugin_instance: string;
  type: string;
  type_instance: string;
  time: number;
  interval: number;
  dstypes: string[];
  dsnames: string[];
  /** Non-finite gauges as "NaN" / "Infinity" / "-Infinity". */
  values: Array<number | string>;
  /** Exact decimal text of each value. */
  values_str: string[];
}

export interface ExpectedNotification {
  kind: 'notification';
  host: string;
  plugin: string;
  plugin_instance: string;
  type: string;
  type_instance: string;
  time: number;
  severity: 1 | 2 | 4;
  severity_name: string;
  message: string;
}

/** Where the aged copies of the packets are written (so `path` holds `bytes`); gone when the process exits. */
let agedDir: string | undefined;

/**
 * The packets of a capture, in arrival order, with their times as captured (less the suite's simulated
 * age; `path` is then a copy of the file holding `bytes`).
 */
export function fixturePackets(folder: FixtureFolder): FixturePacket[] {
  const captured = capturedPackets(folder);
  return AGE_SECONDS === 0 ? captured : captured.map((p) => aged(folder, p));
}

function capturedPackets(folder: FixtureFolder): FixturePacket[] {
  const dir = join(FIXTURES_DIR, folder);
  return readdirSync(dir)
    .filter((file) => /^pkt-\d+\.bin$/.test(file))
    .sort()
    .map((file) => ({ file, path: join(dir, file), bytes: readFileSync(join(dir, file)) }));
}

function aged(folder: FixtureFolder, p: FixturePacket): FixturePacket {
  if (agedDir === undefined) {
    const made = mkdtempSync(join(tmpdir(), 'herd-aged-fixtures-'));
    process.once('exit', () => rmSync(made, { recursive: true, force: true }));
    agedDir = made;
  }
  const bytes = retimePacket(p.bytes, -AGE_SECONDS, folder);
  mkdirSync(join(agedDir, folder), { recursive: true });
  const path = join(agedDir, folder, p.file);
  writeFileSync(path, bytes);
  return { file: p.file, path, bytes };
}

/** What collectd recorded for the capture, with the same times as fixturePackets. */
export function expectedRecords(folder: FixtureFolder): ExpectedRecord[] {
  return capturedRecords(folder).map((r) => shiftRecord(r, -AGE_SECONDS));
}

/**
 * The capture as if collectd had sent it just now: every time moved by the same whole number of seconds so
 * that the capture's last record is at `now` (s since the epoch), signatures made again. Anything that
 * stores the points (retention, rollup windows, "last hour" queries) must replay this, not the capture.
 */
export function replayAt(
  folder: FixtureFolder,
  now = Date.now() / 1000,
): { packets: Array<{ file: string; bytes: Buffer }>; expected: ExpectedRecord[]; shiftSeconds: number } {
  const captured = capturedRecords(folder);
  const shift = Math.floor(now - Math.max(...captured.map((r) => r.time)));
  return {
    packets: capturedPackets(folder).map((p) => ({
      file: p.file,
      bytes: retimePacket(p.bytes, shift, folder),
    })),
    expected: captured.map((r) => shiftRecord(r, shift)),
    shiftSeconds: shift,
  };
}

function capturedRecords(folder: FixtureFolder): ExpectedRecord[] {
  const text = readFileSync(join(FIXTURES_DIR, folder, 'expected.jsonl'), 'utf8');
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as ExpectedRecord);
}

function shiftRecord(r: ExpectedRecord, seconds: number): ExpectedRecord {
  return seconds === 0 ? r : { ...r, time: r.time + seconds };
}

/**
 * A copy of `packet` with every TIME and TIME_HR part moved by `seconds` (whole seconds keep TIME_HR's
 * sub-second bits exact) and, for the signed capture, signed again with its user's password.
 */
export function retimePacket(packet: Buffer, seconds: number, folder: FixtureFolder): Buffer {
  if (seconds === 0) return packet;
  const out = Buffer.from(packet);
  const hr = BigInt(seconds) * BigInt(HR_UNITS_PER_SECOND);
  let signedFrom = -1;
  for (let pos = 0; pos + HEADER_SIZE <= out.length; ) {
    const type = out.readUInt16BE(pos);
    const length = out.readUInt16BE(pos + 2);
    if (length < HEADER_SIZE || pos + length > out.length) throw new Error(`${folder}: bad part at ${pos}`);
    if (type === PART_ENCRYPTION) throw new Error(`${folder}: encrypted packets cannot be re-timed`);
    if (type === PART_SIGNATURE && pos === 0) signedFrom = SIGNATURE_HEADER_SIZE;
    if (type === PART_TIME_HR) out.writeBigUInt64BE(out.readBigUInt64BE(pos + 4) + hr, pos + 4);
    if (type === PART_TIME) out.writeBigUInt64BE(out.readBigUInt64BE(pos + 4) + BigInt(seconds), pos + 4);
    pos += length;
  }
  if (signedFrom >= 0) {
    if (folder !== 'signed') throw new Error(`${folder}: a signed packet, but only signed/ has credentials`);
    hmacSha256(FIXTURE_USER.password, out.subarray(signedFrom)).copy(out, HEADER_SIZE);
  }
  return out;
}

/**
 * A copy of an unsigned `packet` whose every host part says `host` instead (parts re-sized), e.g. a captured
 * notification sent as one of herd's known hosts.
 */
export function withHost(packet: Buffer, host: string): Buffer {
  const parts: Buffer[] = [];
  for (let pos = 0; pos + HEADER_SIZE <= packet.length; ) {
    const type = packet.readUInt16BE(pos);
    const length = packet.readUInt16BE(pos + 2);
    if (length < HEADER_SIZE || pos + length > packet.length) throw new Error(`bad part at ${pos}`);
    if (type === PART_SIGNATURE || type === PART_ENCRYPTION) throw new Error('only unsigned packets');
    if (type === PART_HOST) {
      const text = Buffer.from(`${host}\0`, 'utf8');
      const header = Buffer.alloc(HEADER_SIZE);
      header.writeUInt16BE(PART_HOST, 0);
      header.writeUInt16BE(HEADER_SIZE + text.length, 2);
      parts.push(header, text);
    } else parts.push(packet.subarray(pos, pos + length));
    pos += length;
  }
  return Buffer.concat(parts);
}
