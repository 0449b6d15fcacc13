/**
 * The captured collectd packets in ../shared/fixtures/collectd (beside the checkout, in CI too) and what
 * collectd recorded for them, for tests and the decode benchmark.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const FIXTURES_DIR = fileURLToPath(new URL('../../../shared/fixtures/collectd/', import.meta.url));
export const FIXTURE_TYPES_DB = join(FIXTURES_DIR, 'types.db');
export const FIXTURE_FOLDERS = ['plain', 'virt', 'virt-uuid', 'signed', 'notifications'] as const;
export type FixtureFolder = (typeof FIXTURE_FOLDERS)[number];
/** The credentials of the signed capture (signed/auth_file). */
export const FIXTURE_USER = { username: 'alice', password: 's3cret' };

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

export function fixturePackets(folder: FixtureFolder): FixturePacket[] {
  const dir = join(FIXTURES_DIR, folder);
  return readdirSync(dir)
    .filter((file) => /^pkt-\d+\.bin$/.test(file))
    .sort()
    .map((file) => ({ file, path: join(dir, file), bytes: readFileSync(join(dir, file)) }));
}

export function expectedRecords(folder: FixtureFolder): ExpectedRecord[] {
  const text = readFileSync(join(FIXTURES_DIR, folder, 'expected.jsonl'), 'utf8');
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as ExpectedRecord);
}
