import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { type Kysely, sql } from 'kysely';

// Frozen once released: never edit, add a new migration instead. Imports nothing from the app.

/** Where each stored function's current text is: `<name>.sql`, as PostgreSQL's pg_get_functiondef prints it. */
export const FUNCTIONS_DIR = path.join(import.meta.dirname, 'functions');
/**
 * Below FUNCTIONS_DIR: functions that nothing calls any more, kept in the database only so that the down() of
 * the migration that replaced them can rename them back (herd_quota_claim_by_joins, …). Not applied here.
 */
export const SUPERSEDED = 'superseded';

/**
 * Applies every file of schema/functions (CREATE OR REPLACE FUNCTION; not those in superseded/), in name order: the functions' text as the
 * files hold it when this runs. A later change to a function edits its file and adds a migration that applies
 * the files again (this function, exported for that); the earlier migrations that defined it stay as they are.
 */
export async function applyFunctionFiles(db: Kysely<any>): Promise<void> {
  // As pg_dump does: a LANGUAGE sql body is not checked against the tables now (a file's current text may read a
  // column that a later migration adds; it is checked when called). Local to the migration's transaction.
  await sql`SELECT set_config('check_function_bodies', 'off', true)`.execute(db);
  const files = (await readdir(FUNCTIONS_DIR)).filter((f) => f.endsWith('.sql')).sort();
  for (const file of files) await sql.raw(await readFile(path.join(FUNCTIONS_DIR, file), 'utf8')).execute(db);
}

/**
 * The 2026-11 and 2026-12 migrations defined herd's PL/pgSQL functions, some several times
 * (herd_quota_claim in three of them): the rule in force was whichever ran last. From here on each function's
 * text is in one file, schema/functions/<name>.sql; this applies them, which leaves every function as it was.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await applyFunctionFiles(db);
}

/** Nothing to undo: the files held the text the earlier migrations had left. */
export async function down(): Promise<void> {}
