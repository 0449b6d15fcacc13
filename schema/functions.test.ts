import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { expect, test } from 'vitest';
import { createTestDatabase } from '../lib/testing/db.js';
import { FUNCTIONS_DIR, SUPERSEDED } from './2026-12-08T05-functions.js';

/** herd's own functions in the migrated database (not an extension's): name and full definition. */
const STORED = `
  SELECT p.proname AS name, pg_get_functiondef(p.oid) AS definition
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  WHERE n.nspname = 'public' AND p.prokind = 'f'
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
  ORDER BY p.proname`;

test('every stored function of the migrated database is in schema/functions/[superseded/]<name>.sql, word for word', async () => {
  const handle = await createTestDatabase();
  try {
    const { rows } = await handle.pool.query<{ name: string; definition: string }>(STORED);
    const sqlFiles = async (dir: string) =>
      (await readdir(path.join(FUNCTIONS_DIR, dir)))
        .filter((f) => f.endsWith('.sql'))
        .map((f) => path.join(dir, f));
    const files = [...(await sqlFiles('.')), ...(await sqlFiles(SUPERSEDED))];
    // One file per function (no overloads), and no file for a function that is gone.
    expect(files.map((f) => path.basename(f)).sort()).toEqual(rows.map((r) => `${r.name}.sql`));
    const fileOf = new Map(files.map((f) => [path.basename(f, '.sql'), f]));
    for (const { name, definition } of rows) {
      const text = await readFile(path.join(FUNCTIONS_DIR, fileOf.get(name)!), 'utf8');
      expect(text, name).toBe(`${definition}\n`);
    }
  } finally {
    await handle.close();
  }
});
