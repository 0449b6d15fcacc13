import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestDatabase } from '../../lib/testing/db.js';
import { insertVm } from '../../lib/testing/fleet.js';
import { createPool, createUserWithToken, grantRole } from '../../lib/testing/users.js';
import type { DatabaseHandle } from '../../schema/db.js';
import type { AuthUser } from '../auth/auth-user.js';
import {
  assertPool,
  assertVm,
  effectiveRole,
  visiblePoolIds,
  vmVisibilityFilter,
  vmVisibleWhere,
} from './access.service.js';

let h: DatabaseHandle;
const u = {} as Record<'root' | 'ann' | 'ben' | 'cat', AuthUser>;
// root ─ top (ann: monitor) ─ mid (ann: admin, ben: user) ─ leaf (vm pool)
//                           └ side (cat: monitor)
let top: number;
let mid: number;
let leaf: number;
let side: number;

beforeAll(async () => {
  h = await createTestDatabase();
  for (const name of ['root', 'ann', 'ben', 'cat'] as const) {
    const { id } = await createUserWithToken(h.db, { username: name, superAdmin: name === 'root' });
    u[name] = { id, username: name, isSuperAdmin: name === 'root' };
  }
  top = await createPool(h.db, { name: 'top' });
  mid = await createPool(h.db, { name: 'mid', parentId: top });
  leaf = await createPool(h.db, { name: 'leaf', kind: 'vm', parentId: mid });
  side = await createPool(h.db, { name: 'side', parentId: top });
  await grantRole(h.db, top, u.ann.id, 'monitor');
  await grantRole(h.db, mid, u.ann.id, 'admin');
  await grantRole(h.db, mid, u.ben.id, 'user');
  await grantRole(h.db, side, u.cat.id, 'monitor');
});
afterAll(() => h.close());

describe('roles inherit down the tree', () => {
  test('a grant holds in every pool below; the strongest on the path wins; nothing goes up', async () => {
    expect(await effectiveRole(h.db, u.ann, top)).toBe('monitor');
    expect(await effectiveRole(h.db, u.ann, mid)).toBe('admin');
    expect(await effectiveRole(h.db, u.ann, leaf)).toBe('admin');
    expect(await effectiveRole(h.db, u.ann, side)).toBe('monitor');
    expect(await effectiveRole(h.db, u.ben, leaf)).toBe('user');
    expect(await effectiveRole(h.db, u.ben, top)).toBeNull();
    expect(await effectiveRole(h.db, u.ben, 1)).toBeNull();
    expect(await effectiveRole(h.db, u.root, leaf)).toBe('super');
    expect(await effectiveRole(h.db, u.root, 99999)).toBeNull();
  });

  test('computed at check time: moving a pool changes who reaches it, revoking takes effect at once', async () => {
    const moving = await createPool(h.db, { name: 'moving', parentId: side });
    expect(await effectiveRole(h.db, u.cat, moving)).toBe('monitor');
    expect(await effectiveRole(h.db, u.ben, moving)).toBeNull();
    await h.db.updateTable('pools').set({ parent_id: mid }).where('id', '=', moving).execute();
    expect(await effectiveRole(h.db, u.cat, moving)).toBeNull();
    expect(await effectiveRole(h.db, u.ben, moving)).toBe('user');
    await h.db.deleteFrom('permissions').where('user_id', '=', u.ben.id).execute();
    expect(await effectiveRole(h.db, u.ben, moving)).toBeNull();
    await grantRole(h.db, mid, u.ben.id, 'user');
  });

  test('assertPool: 404 for what the caller cannot see, 403 for what it sees but may not do', async () => {
    await expect(assertPool(h.db, u.ben, top, 'view')).rejects.toMatchObject({ statusCode: 404 });
    await expect(assertPool(h.db, u.ben, 99999, 'view')).rejects.toMatchObject({ statusCode: 404 });
    await expect(assertPool(h.db, u.ben, leaf, 'control')).resolves.toBe('user');
    await expect(assertPool(h.db, u.ben, leaf, 'modify')).rejects.toMatchObject({ statusCode: 403 });
    await expect(assertPool(h.db, u.ann, side, 'control')).rejects.toMatchObject({ statusCode: 403 });
    await expect(assertPool(h.db, u.cat, mid, 'view', 'host')).rejects.toMatchObject({
      message: 'host not found',
    });
  });

  test('visiblePoolIds: every pool at or below a grant', async () => {
    expect(await visiblePoolIds(h.db, u.root)).toBe('all');
    expect((await visiblePoolIds(h.db, u.ben)) as number[]).toEqual(expect.arrayContaining([mid, leaf]));
    expect(((await visiblePoolIds(h.db, u.ben)) as number[]).includes(top)).toBe(false);
    expect(((await visiblePoolIds(h.db, u.cat)) as number[]).sort()).toEqual([side]);
  });
});

describe('VMs', () => {
  test('admins and monitors see all VMs of their pools, users only their own', async () => {
    const annVm = await insertVm(h.db, { poolId: leaf, ownerId: u.ann.id });
    const benVm = await insertVm(h.db, { poolId: leaf, ownerId: u.ben.id });
    const visible = async (who: AuthUser) =>
      (
        await h.db
          .selectFrom('vms')
          .select('id')
          .where(vmVisibleWhere(await vmVisibilityFilter(h.db, who)))
          .where('id', 'in', [annVm, benVm])
          .orderBy('id')
          .execute()
      ).map((r) => r.id);
    expect(await visible(u.root)).toEqual([annVm, benVm]);
    expect(await visible(u.ann)).toEqual([annVm, benVm]);
    expect(await visible(u.ben)).toEqual([benVm]);
    expect(await visible(u.cat)).toEqual([]);

    const row = (id: number, owner: number) => ({ pool_id: leaf, owner_id: owner, id });
    await expect(assertVm(h.db, u.ben, row(benVm, u.ben.id), 'modify')).resolves.toBe('user');
    await expect(assertVm(h.db, u.ben, row(annVm, u.ann.id), 'view')).rejects.toMatchObject({
      statusCode: 404,
    });
    await expect(assertVm(h.db, u.cat, row(annVm, u.ann.id), 'view')).rejects.toMatchObject({
      statusCode: 404,
    });
    await expect(assertVm(h.db, u.ann, row(benVm, u.ben.id), 'control')).resolves.toBe('admin');
    await grantRole(h.db, leaf, u.cat.id, 'monitor');
    await expect(assertVm(h.db, u.cat, row(benVm, u.ben.id), 'view')).resolves.toBe('monitor');
    await expect(assertVm(h.db, u.cat, row(benVm, u.ben.id), 'control')).rejects.toMatchObject({
      statusCode: 403,
    });
  });
});
