import { randomBytes } from 'node:crypto';
import { OutboundGuard } from '../../lib/outbound-guard.js';
import type { Database } from '../../schema/db.js';
import type { AlertSeverity } from '../../schema/index.js';
import { assertPool, visiblePoolRoles } from '../access/access.service.js';
import { audit } from '../audit/audit.service.js';
import type { AuthUser } from '../auth/auth-user.js';
import { badRequest, forbidden, notFound } from '../http/errors.js';
import {
  type ChannelRow,
  channelById,
  deleteChannel,
  insertChannel,
  listChannels,
  updateChannel,
} from './alerts.repository.js';

export interface ChannelBody {
  name: string;
  type: 'webhook' | 'email';
  poolId?: number;
  config: Record<string, unknown>;
  secret?: string;
  minSeverity?: AlertSeverity;
  sendResolved?: boolean;
  enabled?: boolean;
}

/**
 * Channels say where alerts go, so only those who may modify their pool see or change them (the super-admin
 * for global ones). Secrets are never shown, except a generated webhook key in the answer to the creation.
 */
async function assertChannel(db: Database, user: AuthUser, poolId: number | null) {
  if (poolId === null) {
    if (!user.isSuperAdmin) throw notFound('notification channel');
    return;
  }
  await assertPool(db, user, poolId, 'modify', 'notification channel').catch((err) => {
    throw err.statusCode === 403 ? notFound('notification channel') : err;
  });
}

export async function listChannelsFor(db: Database, user: AuthUser, page: { limit: number; offset: number }) {
  const roles = await visiblePoolRoles(db, user);
  const pools = roles === 'all' ? 'all' : [...roles].filter(([, role]) => role === 'admin').map(([id]) => id);
  const { items, total } = await listChannels(db, pools, page);
  return { items: items.map(toChannelView), total };
}

export async function getChannel(db: Database, user: AuthUser, id: number) {
  const row = await channelById(db, id);
  if (!row) throw notFound('notification channel');
  await assertChannel(db, user, row.pool_id);
  return toChannelView(row);
}

export async function createChannel(
  db: Database,
  user: AuthUser,
  body: ChannelBody,
  targets = new OutboundGuard(),
) {
  if (body.poolId === undefined && !user.isSuperAdmin)
    throw forbidden('global channels are made by the super-admin');
  if (body.poolId !== undefined) await assertPool(db, user, body.poolId, 'modify');
  checkConfig(body.type, body.config, targets);
  const secret = body.secret ?? (body.type === 'webhook' ? randomBytes(24).toString('base64url') : undefined);
  return db.transaction().execute(async (trx) => {
    const id = await insertChannel(trx, {
      name: body.name,
      type: body.type,
      pool_id: body.poolId ?? null,
      config: JSON.stringify(body.config),
      secret: secret ?? null,
      min_severity: body.minSeverity,
      send_resolved: body.sendResolved,
      enabled: body.enabled,
      created_by: user.id,
    });
    const after = toChannelView((await channelById(trx, id))!);
    await audit(trx, {
      userId: user.id,
      action: 'notification_channel.create',
      entityType: 'notification_channel',
      entityId: id,
      after,
    });
    return { ...after, ...(body.secret === undefined && secret ? { secret } : {}) };
  });
}

export async function patchChannel(
  db: Database,
  user: AuthUser,
  id: number,
  body: Partial<Omit<ChannelBody, 'type' | 'poolId'>>,
  targets = new OutboundGuard(),
) {
  const row = await channelById(db, id);
  if (!row) throw notFound('notification channel');
  await assertChannel(db, user, row.pool_id);
  if (body.config) checkConfig(row.type, body.config, targets);
  return db.transaction().execute(async (trx) => {
    const updated = await updateChannel(trx, id, {
      name: body.name,
      config: body.config ? JSON.stringify(body.config) : undefined,
      secret: body.secret,
      min_severity: body.minSeverity,
      send_resolved: body.sendResolved,
      enabled: body.enabled,
    });
    const after = toChannelView(updated!);
    await audit(trx, {
      userId: user.id,
      action: 'notification_channel.update',
      entityType: 'notification_channel',
      entityId: id,
      before: toChannelView(row),
      after,
    });
    return after;
  });
}

export async function removeChannel(db: Database, user: AuthUser, id: number): Promise<void> {
  const row = await channelById(db, id);
  if (!row) throw notFound('notification channel');
  await assertChannel(db, user, row.pool_id);
  await db.transaction().execute(async (trx) => {
    await deleteChannel(trx, id);
    await audit(trx, {
      userId: user.id,
      action: 'notification_channel.delete',
      entityType: 'notification_channel',
      entityId: id,
      before: toChannelView(row),
    });
  });
}

function checkConfig(type: ChannelBody['type'], config: Record<string, unknown>, targets: OutboundGuard) {
  if (type === 'webhook') {
    const url = typeof config.url === 'string' ? config.url : '';
    if (!/^https?:\/\//.test(url))
      throw badRequest('config.url: an http(s) URL is required for a webhook', { field: 'config.url' });
    const refused = targets.refusedUrl(url);
    if (refused) throw badRequest(`config.url: ${refused}`, { field: 'config.url' });
  } else {
    if (!Array.isArray(config.to) || config.to.length === 0)
      throw badRequest('config.to: at least one address is required for e-mail', { field: 'config.to' });
    const smtp = config.smtp as { host?: unknown } | undefined;
    const refused = smtp && targets.refusedHost(String(smtp.host ?? ''));
    if (refused) throw badRequest(`config.smtp.host: ${refused}`, { field: 'config.smtp.host' });
  }
}

export function toChannelView(c: ChannelRow) {
  return {
    id: c.id,
    name: c.name,
    type: c.type,
    poolId: c.pool_id,
    config: c.config,
    hasSecret: c.secret !== null,
    minSeverity: c.min_severity,
    sendResolved: c.send_resolved,
    enabled: c.enabled,
    createdBy: c.created_by,
    createdAt: c.created_at.toISOString(),
  };
}
