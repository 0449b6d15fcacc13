/**
 * `herd decode FILE...`: decodes files that each hold one collectd packet and prints one JSON object per
 * line (see CONTRACT.md). Counters, derives and absolutes are printed exactly (64-bit integers as JSON
 * numbers of any size), gauges as JavaScript prints doubles (`"NaN"`, `"Infinity"`, `"-Infinity"` as
 * strings, as collectd's python writer records them), times and intervals in seconds.
 *
 * A file that cannot be read or decoded gets an error line on stderr naming the file and the reason; so
 * does a value list whose type is missing from types.db or has another number of values, and data left
 * out by the security level or by collectd's rules (no time, host, plugin or type). What was decoded
 * before a malformed part is still printed, as the listener would still have accepted it. The exit code
 * is 1 when anything failed.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Notification, ValueList } from '../types.js';
import { SEVERITY_NAMES } from '../types.js';
import { AuthFile } from './auth-file.js';
import { DecodeError } from './decode-error.js';
import { PacketDecoder } from './decoder.js';
import type { SecurityLevel } from './parts.js';
import { BUNDLED_TYPES_DB, DEFAULT_TYPES_DB, loadTypesDb, type TypesDb } from './types-db.js';

export interface DecodeCommandOptions {
  authFile?: string;
  /** Extra types.db files or directories, read after collectd's own. */
  typesDb?: string[];
  securityLevel?: SecurityLevel;
  /** collectd's types.db; default /usr/share/collectd/types.db. */
  baseTypesDb?: string;
}

export interface TextSink {
  write(text: string): unknown;
}

export async function runDecode(
  files: string[],
  opts: DecodeCommandOptions,
  out: TextSink,
  err: TextSink,
): Promise<number> {
  // One file's output, filled by the decoder's callbacks.
  let lines: string[] = [];
  let problems: string[] = [];
  let decoder: PacketDecoder;
  try {
    const typesDb = await loadTypes(opts, err);
    const users = opts.authFile === undefined ? undefined : await AuthFile.load(opts.authFile);
    decoder = new PacketDecoder({
      exact: true,
      securityLevel: opts.securityLevel ?? 'none',
      users,
      onValues: (vl) => {
        const line = valuesLine(vl, typesDb);
        if (line.startsWith('{')) lines.push(line);
        else problems.push(line);
      },
      onNotification: (n) => lines.push(notificationLine(n)),
    });
  } catch (error) {
    err.write(`herd decode: ${(error as Error).message}\n`);
    return 1;
  }

  let failed = false;
  for (const file of files) {
    lines = [];
    problems = [];
    try {
      const summary = decoder.decode(await readFile(file));
      if (summary.refused > 0) {
        problems.push(
          `${summary.refused} parts ignored: not signed or encrypted as security level ${opts.securityLevel} requires`,
        );
      }
      if (summary.incomplete > 0) {
        problems.push(
          `${summary.incomplete} value lists or notifications skipped: no time, host, plugin, type, message or severity`,
        );
      }
    } catch (error) {
      problems.push(describe(error));
    }
    if (lines.length > 0) out.write(`${lines.join('\n')}\n`);
    for (const problem of problems) err.write(`${file}: ${problem}\n`);
    if (problems.length > 0) failed = true;
  }
  return failed ? 1 : 0;
}

async function loadTypes(opts: DecodeCommandOptions, err: TextSink): Promise<TypesDb> {
  const base = opts.baseTypesDb ?? DEFAULT_TYPES_DB;
  const extra = opts.typesDb ?? [];
  if (!existsSync(base)) {
    err.write(`herd decode: ${base} not found; using herd's own copy of collectd's types.db\n`);
    return loadTypesDb([BUNDLED_TYPES_DB, ...extra]);
  }
  return loadTypesDb([base, ...extra]);
}

function describe(error: unknown): string {
  if (error instanceof DecodeError) {
    return error.kind === 'auth'
      ? `authentication failed: ${error.reason}`
      : `malformed packet: ${error.reason}`;
  }
  const code = (error as NodeJS.ErrnoException).code;
  return code === undefined ? String(error) : `cannot read: ${code}`;
}

/** The JSON line of a value list, or the problem (not starting with `{`) when types.db disagrees. */
function valuesLine(vl: ValueList, typesDb: TypesDb): string {
  const sources = typesDb.get(vl.type);
  const where = `host "${vl.host}", plugin "${vl.plugin}", type "${vl.type}"`;
  if (sources === undefined) return `value list of ${where}: type not in types.db`;
  if (sources.length !== vl.values.length) {
    return `value list of ${where}: ${vl.values.length} values, types.db has ${sources.length}`;
  }
  const values = vl.values.map(
    (value, i) =>
      `{"name":${JSON.stringify(sources[i].name)},"type":"${vl.dsTypes[i]}","value":${jsonNumber(value)}}`,
  );
  return `{"kind":"values",${identity(vl)},"interval":${jsonNumber(vl.interval)},"values":[${values.join(',')}]}`;
}

function notificationLine(n: Notification): string {
  return `{"kind":"notification",${identity(n)},"severity":"${SEVERITY_NAMES[n.severity]}","message":${JSON.stringify(n.message)}}`;
}

function identity(x: ValueList | Notification): string {
  return [
    `"time":${jsonNumber(x.time)}`,
    `"host":${JSON.stringify(x.host)}`,
    `"plugin":${JSON.stringify(x.plugin)}`,
    `"plugin_instance":${JSON.stringify(x.pluginInstance)}`,
    `"type":${JSON.stringify(x.type)}`,
    `"type_instance":${JSON.stringify(x.typeInstance)}`,
  ].join(',');
}

function jsonNumber(value: number | bigint): string {
  if (typeof value === 'bigint' || Number.isFinite(value)) return String(value);
  return `"${value}"`;
}
