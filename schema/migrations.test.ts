import { expect, inject, test } from 'vitest';
import { createTestDatabase } from '../lib/testing/db.js';
import { connect, migrateToLatest, migrator } from './db.js';
import { migrations } from './index.js';

test('every migration runs down and up again on a migrated database', async () => {
  const handle = await createTestDatabase();
  try {
    const m = migrator(handle.db);
    const names = Object.keys(migrations);
    for (let i = 0; i < names.length; i++) {
      const { error } = await m.migrateDown();
      expect(error).toBeUndefined();
    }
    const { rows } = await handle.pool.query(
      `SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = 'public' AND table_name NOT LIKE 'kysely_%'`,
    );
    expect(rows[0].n).toBe(0);
    const up = await m.migrateToLatest();
    expect(up.error).toBeUndefined();
    expect(up.results?.map((r) => r.migrationName)).toEqual(names);
    const pools = await handle.db.selectFrom('pools').selectAll().execute();
    expect(pools).toMatchObject([{ id: 1, name: 'default', kind: 'hardware', parent_id: null }]);
  } finally {
    await handle.close();
  }
});

test('processes migrating an empty database at the same moment take turns: each succeeds, each migration runs once', async () => {
  const adminUrl = inject('pgAdminUrl');
  const name = `herd_empty_${Date.now().toString(36)}`;
  const admin = connect(adminUrl, { max: 1 });
  await admin.pool.query(`CREATE DATABASE ${name}`);
  const handles = Array.from({ length: 4 }, () =>
    connect(adminUrl.replace(/\/postgres$/, `/${name}`), { max: 2 }),
  );
  try {
    const results = await Promise.all(handles.map((h) => migrateToLatest(h.db)));
    for (const r of results) expect(r.error).toBeUndefined();
    const applied = results.flatMap((r) => r.results ?? []).map((r) => r.migrationName);
    expect(applied.sort()).toEqual(Object.keys(migrations).sort());
  } finally {
    await Promise.all(handles.map((h) => h.close()));
    await admin.pool.query(`DROP DATABASE ${name}`);
    await admin.close();
  }
});
