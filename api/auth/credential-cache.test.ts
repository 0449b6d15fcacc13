import { afterAll, afterEach, beforeAll, expect, test, vi } from 'vitest';
import { createTestDatabase } from '../../lib/testing/db.js';
import { createUserWithToken } from '../../lib/testing/users.js';
import { authenticate, CREDENTIAL_CACHE_MS, revokeToken } from './auth.service.js';

let database: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());
afterEach(() => {
  vi.useRealTimers();
});

/** What another herd process would do: a write this process's query builder never sees. */
const elsewhere = (text: string, values: unknown[]) => database.pool.query(text, values);

test('a credential found live is not looked up again for CREDENTIAL_CACHE_MS', async () => {
  vi.useFakeTimers({ toFake: ['Date'] });
  const { id, token } = await createUserWithToken(database.db, { username: 'cached' });
  expect((await authenticate(database.db, token))?.user.id).toBe(id);
  await elsewhere('UPDATE users SET disabled = true WHERE id = $1', [id]);
  // Disabled by another process: still taken from the cache until it expires, then refused.
  expect((await authenticate(database.db, token))?.user.id).toBe(id);
  vi.setSystemTime(Date.now() + CREDENTIAL_CACHE_MS + 1);
  expect(await authenticate(database.db, token)).toBeNull();
});

test("this process's own changes to sessions and users take effect at once", async () => {
  const a = await createUserWithToken(database.db, { username: 'revoked' });
  const first = await authenticate(database.db, a.token);
  expect(first?.user.id).toBe(a.id);
  await revokeToken(database.db, first!.user, first!.sessionId);
  expect(await authenticate(database.db, a.token)).toBeNull();

  const b = await createUserWithToken(database.db, { username: 'promoted' });
  expect((await authenticate(database.db, b.token))?.user.isSuperAdmin).toBe(false);
  await database.db.updateTable('users').set({ is_super_admin: true }).where('id', '=', b.id).execute();
  expect((await authenticate(database.db, b.token))?.user.isSuperAdmin).toBe(true);
});

test('noting when a credential was last used keeps the cache', async () => {
  vi.useFakeTimers({ toFake: ['Date'] });
  const { id, token } = await createUserWithToken(database.db, { username: 'touched' });
  await authenticate(database.db, token);
  await elsewhere('UPDATE users SET disabled = true WHERE id = $1', [id]);
  await database.db
    .updateTable('sessions')
    .set({ last_used_at: new Date() })
    .where('user_id', '=', id)
    .execute();
  expect((await authenticate(database.db, token))?.user.id).toBe(id);
  await database.db.updateTable('sessions').set({ name: 'renamed' }).where('user_id', '=', id).execute();
  expect(await authenticate(database.db, token)).toBeNull();
});
