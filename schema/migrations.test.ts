import { expect, test } from 'vitest';
import { migrator } from '../lib/db.js';
import { createTestDatabase } from '../lib/testing/db.js';
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
