import type { Database } from '../../schema/db.js';

export interface AuditRow {
  user_id: number | null;
  action: string;
  entity_type: string;
  entity_id: string | null;
  before: unknown;
  after: unknown;
}

export async function insertAudit(db: Database, row: AuditRow): Promise<void> {
  await db
    .insertInto('audit_log')
    .values({
      ...row,
      before: row.before === undefined || row.before === null ? null : JSON.stringify(row.before),
      after: row.after === undefined || row.after === null ? null : JSON.stringify(row.after),
    })
    .execute();
}

export interface AuditFilter {
  userId?: number;
  entityType?: string;
  entityId?: string;
  action?: string;
  limit: number;
  offset: number;
}

export async function listAudit(db: Database, f: AuditFilter) {
  let q = db.selectFrom('audit_log');
  if (f.userId !== undefined) q = q.where('user_id', '=', f.userId);
  if (f.entityType !== undefined) q = q.where('entity_type', '=', f.entityType);
  if (f.entityId !== undefined) q = q.where('entity_id', '=', f.entityId);
  if (f.action !== undefined) q = q.where('action', '=', f.action);
  const [items, { total }] = await Promise.all([
    q
      .leftJoin('users', 'users.id', 'audit_log.user_id')
      .select([
        'audit_log.id',
        'audit_log.at',
        'audit_log.user_id',
        'users.username',
        'audit_log.action',
        'audit_log.entity_type',
        'audit_log.entity_id',
        'audit_log.before',
        'audit_log.after',
      ])
      .orderBy('audit_log.id', 'desc')
      .limit(f.limit)
      .offset(f.offset)
      .execute(),
    q.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow(),
  ]);
  return { items, total: Number(total) };
}
