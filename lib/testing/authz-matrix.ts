import { describe, expect, test } from 'vitest';
import type { TestApp } from './app.js';
import { authHeader, createPool, createUserWithToken, grantRole } from './users.js';

/**
 * The authorization matrix: for every endpoint, each role and an unrelated user get the expected status —
 * 404 for what the caller may not see, 403 for what it may see but not change — and lists show exactly what
 * each may see. Other domains add their endpoints with their own cases:
 *
 *   let world: AuthzWorld;
 *   beforeAll(async () => { t = await createTestApp(); world = await createAuthzWorld(t); });
 *   runAuthzMatrix(() => world, [
 *     authzCase({ name: 'GET a host', method: 'GET',
 *       setup: async (w) => insertHost(w.db, { poolId: w.hw, cpus: 4, memoryMiB: 4096 }),
 *       url: (_w, hostId) => `/api/v1/hosts/${hostId}`,
 *       expect: statuses(200, 200, 200, 200, 404) }),
 *   ]);
 */
export type MatrixRole = 'super' | 'admin' | 'user' | 'monitor' | 'unrelated';
export const MATRIX_ROLES: readonly MatrixRole[] = ['super', 'admin', 'user', 'monitor', 'unrelated'];

export interface AuthzWorld {
  t: TestApp;
  db: TestApp['database']['db'];
  /** `super` is the super-admin; admin/user/monitor hold that role on `hw`; `unrelated` is admin of `otherHw` only. */
  users: Record<MatrixRole, { id: number; token: string }>;
  /** A hardware pool (below the default one) where admin, user and monitor hold their roles. */
  hw: number;
  /** A VM pool inside `hw`: the roles hold there by inheritance. */
  vmPool: number;
  /** A hardware pool where only `unrelated` holds a role. */
  otherHw: number;
  /** A user with no role anywhere, for endpoints that need a target user. */
  bystander: { id: number; token: string };
  headers(role: MatrixRole): Record<string, string>;
}

let worlds = 0;

export async function createAuthzWorld(t: TestApp): Promise<AuthzWorld> {
  const db = t.database.db;
  const n = ++worlds;
  const users = {} as AuthzWorld['users'];
  for (const role of MATRIX_ROLES) {
    users[role] = await createUserWithToken(db, { username: `m${n}-${role}`, superAdmin: role === 'super' });
  }
  const hw = await createPool(db, { name: `matrix-${n}` });
  const vmPool = await createPool(db, { name: `matrix-${n}-vms`, kind: 'vm', parentId: hw });
  const otherHw = await createPool(db, { name: `matrix-${n}-other` });
  await grantRole(db, hw, users.admin.id, 'admin');
  await grantRole(db, hw, users.user.id, 'user');
  await grantRole(db, hw, users.monitor.id, 'monitor');
  await grantRole(db, otherHw, users.unrelated.id, 'admin');
  const bystander = await createUserWithToken(db, { username: `m${n}-bystander` });
  return { t, db, users, hw, vmPool, otherHw, bystander, headers: (role) => authHeader(users[role].token) };
}

export interface AuthzCase<C = unknown> {
  name: string;
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Fresh fixtures before each role's request, so that one role's change does not decide the next one's. */
  setup?: (w: AuthzWorld, role: MatrixRole) => Promise<C>;
  url: (w: AuthzWorld, c: C) => string;
  body?: (w: AuthzWorld, c: C) => unknown;
  /** The status each role gets. */
  expect: Record<MatrixRole, number>;
  /** For lists: whether the item with this id is in `items` for each role. */
  listed?: { id: (w: AuthzWorld, c: C) => number; expect: Record<MatrixRole, boolean> };
}

/** Keeps the case's fixture type between `setup`, `url` and `body`. */
export function authzCase<C>(c: AuthzCase<C>): AuthzCase<any> {
  return c;
}

/** Statuses in the order super, admin, user, monitor, unrelated. */
export function statuses(
  superAdmin: number,
  admin: number,
  user: number,
  monitor: number,
  unrelated: number,
): Record<MatrixRole, number> {
  return { super: superAdmin, admin, user, monitor, unrelated };
}

/** Whether each role sees a listed item, in the order super, admin, user, monitor, unrelated. */
export function seen(
  superAdmin: boolean,
  admin: boolean,
  user: boolean,
  monitor: boolean,
  unrelated: boolean,
): Record<MatrixRole, boolean> {
  return { super: superAdmin, admin, user, monitor, unrelated };
}

/** One vitest test per case and role. */
export function runAuthzMatrix(world: () => AuthzWorld, cases: AuthzCase<any>[]): void {
  describe.each(cases.map((c) => [`${c.method} ${c.name}`, c] as const))('%s', (_label, c) => {
    test.each(MATRIX_ROLES.map((r) => [r]))('as %s', async (role) => {
      const w = world();
      const fixture = c.setup ? await c.setup(w, role) : undefined;
      const body = c.body?.(w, fixture);
      const res = await w.t.app.inject({
        method: c.method,
        url: c.url(w, fixture),
        headers: w.headers(role),
        ...(body === undefined ? {} : { payload: body as object }),
      });
      expect(res.statusCode, `${c.method} ${c.url(w, fixture)} as ${role}: ${res.body}`).toBe(c.expect[role]);
      if (c.listed) {
        const ids = (res.json().items as Array<{ id: number }>).map((i) => i.id);
        expect(ids.includes(c.listed.id(w, fixture)), `listed for ${role}`).toBe(c.listed.expect[role]);
      }
    });
  });
}
