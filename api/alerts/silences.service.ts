import type { Database } from '../../schema/db.js';
import { assertPool, visiblePoolIds } from '../access/access.service.js';
import { audit } from '../audit/audit.service.js';
import type { AuthUser } from '../auth/auth-user.js';
import { badRequest, forbidden, notFound } from '../http/errors.js';
import {
  deleteSilence,
  insertSilence,
  listSilences,
  type SilenceRow,
  silenceById,
  updateSilence,
} from './alerts.repository.js';
import { type Matcher, matchersProblem } from './silence-match.js';

export interface SilenceBody {
  poolId?: number;
  matchers: Matcher[];
  startsAt?: string;
  endsAt: string;
  comment: string;
}

/**
 * Silences hold notifications back while they are in force (alerts still change state and show as silenced).
 * A global silence is the super-admin's; a pool's silence is set by whoever may modify the pool and holds only
 * alerts of that pool and below. Everyone signed in sees global silences, and the silences of pools they view.
 */
async function assertSilence(db: Database, user: AuthUser, poolId: number | null, need: 'view' | 'modify') {
  if (poolId === null) {
    if (need === 'modify' && !user.isSuperAdmin)
      throw forbidden('global silences are set by the super-admin');
    return;
  }
  await assertPool(db, user, poolId, need, 'silence');
}

export async function listSilencesFor(
  db: Database,
  user: AuthUser,
  active: boolean | undefined,
  page: { limit: number; offset: number },
) {
  const now = new Date();
  const { items, total } = await listSilences(
    db,
    { pools: await visiblePoolIds(db, user), activeAt: active ? now : undefined },
    page,
  );
  return { items: await views(db, items, now), total };
}

export async function getSilence(db: Database, user: AuthUser, id: number) {
  const row = await silenceById(db, id);
  if (!row) throw notFound('silence');
  await assertSilence(db, user, row.pool_id, 'view');
  return (await views(db, [row], new Date()))[0];
}

export async function createSilence(db: Database, user: AuthUser, body: SilenceBody) {
  await assertSilence(db, user, body.poolId ?? null, 'modify');
  const startsAt = body.startsAt ? new Date(body.startsAt) : new Date();
  const endsAt = new Date(body.endsAt);
  check(body.matchers, startsAt, endsAt);
  return db.transaction().execute(async (trx) => {
    const id = await insertSilence(trx, {
      pool_id: body.poolId ?? null,
      matchers: JSON.stringify(body.matchers),
      starts_at: startsAt,
      ends_at: endsAt,
      comment: body.comment,
      created_by: user.id,
    });
    const after = (await views(trx, [(await silenceById(trx, id))!], new Date()))[0];
    await audit(trx, {
      userId: user.id,
      action: 'silence.create',
      entityType: 'silence',
      entityId: id,
      after,
    });
    return after;
  });
}

export async function patchSilence(
  db: Database,
  user: AuthUser,
  id: number,
  body: Partial<Omit<SilenceBody, 'poolId'>>,
) {
  const before = await getSilence(db, user, id);
  await assertSilence(db, user, before.poolId, 'modify');
  const matchers = body.matchers ?? before.matchers;
  const startsAt = new Date(body.startsAt ?? before.startsAt);
  const endsAt = new Date(body.endsAt ?? before.endsAt);
  check(matchers, startsAt, endsAt);
  return db.transaction().execute(async (trx) => {
    const row = await updateSilence(trx, id, {
      matchers: body.matchers ? JSON.stringify(body.matchers) : undefined,
      starts_at: body.startsAt ? startsAt : undefined,
      ends_at: body.endsAt ? endsAt : undefined,
      comment: body.comment,
    });
    if (!row) throw notFound('silence');
    const after = (await views(trx, [row], new Date()))[0];
    await audit(trx, {
      userId: user.id,
      action: 'silence.update',
      entityType: 'silence',
      entityId: id,
      before,
      after,
    });
    return after;
  });
}

export async function removeSilence(db: Database, user: AuthUser, id: number): Promise<void> {
  const before = await getSilence(db, user, id);
  await assertSilence(db, user, before.poolId, 'modify');
  await db.transaction().execute(async (trx) => {
    await deleteSilence(trx, id);
    await audit(trx, {
      userId: user.id,
      action: 'silence.delete',
      entityType: 'silence',
      entityId: id,
      before,
    });
  });
}

function check(matchers: Matcher[], startsAt: Date, endsAt: Date) {
  const problem = matchersProblem(matchers);
  if (problem) throw badRequest(problem, { field: problem.split(':')[0] });
  if (!(endsAt > startsAt)) throw badRequest('endsAt: must be after startsAt', { field: 'endsAt' });
}

async function views(db: Database, rows: SilenceRow[], now: Date) {
  const ids = [...new Set(rows.map((r) => r.created_by).filter((u): u is number => u !== null))];
  const names = ids.length
    ? new Map(
        (await db.selectFrom('users').select(['id', 'username']).where('id', 'in', ids).execute()).map(
          (u) => [u.id, u.username],
        ),
      )
    : new Map<number, string>();
  return rows.map((r) => ({
    id: r.id,
    poolId: r.pool_id,
    matchers: r.matchers,
    startsAt: r.starts_at.toISOString(),
    endsAt: r.ends_at.toISOString(),
    comment: r.comment,
    createdBy: r.created_by,
    createdByName: r.created_by === null ? null : (names.get(r.created_by) ?? null),
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
    status: (r.starts_at > now ? 'pending' : r.ends_at > now ? 'active' : 'expired') as
      | 'pending'
      | 'active'
      | 'expired',
  }));
}
