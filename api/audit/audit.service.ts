import type { Database } from '../../schema/db.js';
import type { AuthUser } from '../auth/auth-user.js';
import { notFound } from '../http/errors.js';
import { type AuditFilter, insertAudit, listAudit } from './audit.repository.js';

export interface AuditEntry {
  /** Who: null for herd itself (startup, LDAP sync without a caller). */
  userId: number | null;
  /** What, as `<entity>.<verb>`: `pool.create`, `vm.start`, `permission.set`… */
  action: string;
  entityType: string;
  entityId: string | number | null;
  /** The entity before and after the change, in API shape; null when created or deleted. */
  before?: unknown;
  after?: unknown;
}

/**
 * Records a change in the audit log. Call it in the transaction that makes the change, so that the log
 * holds exactly what was committed. Secrets must not be passed (password hashes, tokens).
 */
export async function audit(trx: Database, entry: AuditEntry): Promise<void> {
  await insertAudit(trx, {
    user_id: entry.userId,
    action: entry.action,
    entity_type: entry.entityType,
    entity_id: entry.entityId === null ? null : String(entry.entityId),
    before: entry.before ?? null,
    after: entry.after ?? null,
  });
}

/** The audit log, newest first; super-admins only (others are told it does not exist). */
export async function listAuditLog(db: Database, user: AuthUser, filter: AuditFilter) {
  if (!user.isSuperAdmin) throw notFound('audit log');
  const { items, total } = await listAudit(db, filter);
  return {
    total,
    items: items.map((r) => ({
      id: r.id,
      at: r.at.toISOString(),
      userId: r.user_id,
      username: r.username,
      action: r.action,
      entityType: r.entity_type,
      entityId: r.entity_id,
      before: r.before,
      after: r.after,
    })),
  };
}
