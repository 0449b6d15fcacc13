/**
 * collectd's types.db: which data sources (name, type, range) each type has. Value names come from here
 * (the packet only carries the types), and a value list whose type is unknown or whose value count
 * disagrees is dropped, as collectd's plugin_dispatch_values drops it.
 *
 * Parsed as collectd's types_list.c does: a line is a type and its data sources separated by blanks,
 * each `name:TYPE:min:max` (optionally followed by a comma), `U` for an unbounded limit; `#` lines are
 * comments, a line collectd cannot parse is skipped, and a type defined again replaces the earlier
 * definition (so later files override earlier ones).
 */
import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DsType, ValueList } from '../types.js';

/** Where Debian's collectd-core puts the file; collectd's own default as well. */
export const SYSTEM_TYPES_DB = '/usr/share/collectd/types.db';

/** collectd 5.12's types.db as data, shipped with herd (next to this module, also in dist/). */
export const BUNDLED_TYPES_DB = join(dirname(fileURLToPath(import.meta.url)), 'types.db');

/**
 * The base definitions: the machine's collectd's where it is installed (it matches the collectd sending), else
 * herd's copy. HERD_COLLECTD_TYPES_DB / --types-db add to it or replace types.
 */
export const DEFAULT_TYPES_DB = existsSync(SYSTEM_TYPES_DB) ? SYSTEM_TYPES_DB : BUNDLED_TYPES_DB;

export interface DataSource {
  name: string;
  dsType: DsType;
  /** NaN when unbounded (`U`). */
  min: number;
  max: number;
}

export type TypesDbMismatch = 'unknown-type' | 'value-count';

const DS_TYPES: Record<string, DsType> = {
  gauge: 'gauge',
  counter: 'counter',
  derive: 'derive',
  absolute: 'absolute',
};

export class TypesDb {
  private readonly types = new Map<string, readonly DataSource[]>();

  get(type: string): readonly DataSource[] | undefined {
    return this.types.get(type);
  }

  get size(): number {
    return this.types.size;
  }

  /** Why a value list does not fit types.db, or undefined if it does. */
  check(vl: Pick<ValueList, 'type' | 'values'>): TypesDbMismatch | undefined {
    const sources = this.types.get(vl.type);
    if (sources === undefined) return 'unknown-type';
    return sources.length === vl.values.length ? undefined : 'value-count';
  }

  /** Adds the definitions in a types.db text; returns the number of types read. */
  addText(text: string): number {
    let added = 0;
    for (const rawLine of text.split('\n')) {
      if (rawLine.startsWith('#')) continue;
      const fields = rawLine.split(/[ \t\r]+/).filter((field) => field !== '');
      if (fields.length < 2 || fields[0].startsWith('#')) continue;
      const sources = fields.slice(1).map(parseDataSource);
      if (sources.some((source) => source === undefined)) continue;
      this.types.set(fields[0], sources as DataSource[]);
      added++;
    }
    return added;
  }

  /** Adds a file, or every file of a directory in name order (hidden files left out). */
  async addPath(path: string): Promise<void> {
    if ((await stat(path)).isDirectory()) {
      const names = (await readdir(path)).filter((name) => !name.startsWith('.')).sort();
      for (const name of names) {
        const file = join(path, name);
        if ((await stat(file)).isFile()) this.addText(await readFile(file, 'utf8'));
      }
      return;
    }
    this.addText(await readFile(path, 'utf8'));
  }
}

/**
 * Loads types.db files or directories in order (later ones override types of the same name), collectd's
 * own by default. Throws when one cannot be read, naming it.
 */
export async function loadTypesDb(paths: readonly string[] = [DEFAULT_TYPES_DB]): Promise<TypesDb> {
  const db = new TypesDb();
  for (const path of paths) {
    try {
      await db.addPath(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new Error(`cannot read types.db ${path}: ${code ?? (err as Error).message}`);
    }
  }
  return db;
}

function parseDataSource(field: string): DataSource | undefined {
  // collectd's minimum: `a:GAUGE:U:U` is 11 characters.
  if (field.length < 11) return undefined;
  const spec = field.endsWith(',') ? field.slice(0, -1) : field;
  const parts = spec.split(':').filter((part) => part !== '');
  if (parts.length !== 4) return undefined;
  const [name, type, min, max] = parts;
  const dsType = DS_TYPES[type.toLowerCase()];
  if (dsType === undefined) return undefined;
  return { name, dsType, min: parseLimit(min), max: parseLimit(max) };
}

function parseLimit(text: string): number {
  if (text.toUpperCase() === 'U') return Number.NaN;
  // atof() reads what it can and gives 0 for the rest.
  const value = Number.parseFloat(text);
  return Number.isNaN(value) ? 0 : value;
}
