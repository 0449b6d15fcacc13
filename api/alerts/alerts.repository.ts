import { type Insertable, type Selectable, sql, type Updateable } from 'kysely';
import type { Database } from '../../schema/db.js';
import type {
  AlertInstancesTable,
  AlertRulesTable,
  AlertSeverity,
  AlertState,
  NotificationChannelsTable,
  NotificationStatus,
  NotificationsTable,
  SilencesTable,
} from '../../schema/index.js';

export type InstanceRow = Selectable<AlertInstancesTable>;
export type ChannelRow = Selectable<NotificationChannelsTable>;
export type NotificationRow = Selectable<NotificationsTable>;
export type SilenceRow = Selectable<SilencesTable>;

/** First key of the advisory locks alerting takes (the second is the rule id): "herd" in ASCII. */
const RULE_LOCK_SPACE = 0x68657264;

// ---- rules

export async function enabledRules(db: Database) {
  return db.selectFrom('alert_rules').selectAll().where('enabled', '=', true).orderBy('id').execute();
}

export async function ruleById(db: Database, id: number) {
  return db.selectFrom('alert_rules').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Inserts the rules herd ships that are not there yet; edits made to them since are kept. */
export async function insertBuiltinRules(db: Database, rules: Insertable<AlertRulesTable>[]): Promise<void> {
  if (!rules.length) return;
  await db
    .insertInto('alert_rules')
    .values(rules)
    .onConflict((oc) => oc.column('builtin').doNothing())
    .execute();
}

export interface RuleFilter {
  /** Pools whose rules are visible; 'all' for the super-admin. Global rules are visible to everyone. */
  pools: number[] | 'all';
  scope?: 'global' | 'pool' | 'host';
  poolId?: number;
  hostId?: number;
  enabled?: boolean;
}

export async function listRules(db: Database, f: RuleFilter, page: { limit: number; offset: number }) {
  let q = db.selectFrom('alert_rules').leftJoin('hosts', 'hosts.id', 'alert_rules.host_id');
  if (f.pools !== 'all') {
    const pools = f.pools.length ? f.pools : [0];
    q = q.where((eb) =>
      eb.or([
        eb('alert_rules.scope', '=', 'global'),
        eb('alert_rules.pool_id', 'in', pools),
        eb('hosts.pool_id', 'in', pools),
      ]),
    );
  }
  if (f.scope) q = q.where('alert_rules.scope', '=', f.scope);
  if (f.poolId !== undefined) q = q.where('alert_rules.pool_id', '=', f.poolId);
  if (f.hostId !== undefined) q = q.where('alert_rules.host_id', '=', f.hostId);
  if (f.enabled !== undefined) q = q.where('alert_rules.enabled', '=', f.enabled);
  const [items, count] = await Promise.all([
    q.selectAll('alert_rules').orderBy('alert_rules.id').limit(page.limit).offset(page.offset).execute(),
    q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow(),
  ]);
  return { items, total: Number(count.n) };
}

export async function insertRule(db: Database, row: Insertable<AlertRulesTable>): Promise<number> {
  const { id } = await db.insertInto('alert_rules').values(row).returning('id').executeTakeFirstOrThrow();
  return id;
}

export async function updateRule(db: Database, id: number, values: Updateable<AlertRulesTable>) {
  return db
    .updateTable('alert_rules')
    .set({ ...values, updated_at: sql`now()` })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

export async function deleteRule(db: Database, id: number): Promise<void> {
  await db.deleteFrom('alert_rules').where('id', '=', id).execute();
}

// ---- what rules look at

export interface FleetHost {
  id: number;
  hostname: string;
  pool_id: number;
  cpus: number;
  memory_mib: number;
  enabled: boolean;
  state: string;
  heartbeat_at: Date | null;
  heartbeat_error: string | null;
}

export async function fleetHosts(db: Database): Promise<FleetHost[]> {
  return db
    .selectFrom('hosts')
    .select([
      'id',
      'hostname',
      'pool_id',
      'cpus',
      'memory_mib',
      'enabled',
      'state',
      'heartbeat_at',
      'heartbeat_error',
    ])
    .orderBy('id')
    .execute();
}

export async function poolTree(
  db: Database,
): Promise<Array<{ id: number; name: string; parent_id: number | null }>> {
  return db.selectFrom('pools').select(['id', 'name', 'parent_id']).execute();
}

// ---- instances

/** Only one process evaluates a rule at a time; the other skips it for this round. Transaction-scoped. */
export async function tryLockRule(trx: Database, ruleId: number): Promise<boolean> {
  const { rows } = await sql<{
    locked: boolean;
  }>`SELECT pg_try_advisory_xact_lock(${RULE_LOCK_SPACE}::int4, ${ruleId}::int4) AS locked`.execute(trx);
  return rows[0].locked;
}

export async function instancesOfRule(trx: Database, ruleId: number): Promise<InstanceRow[]> {
  return trx.selectFrom('alert_instances').selectAll().where('rule_id', '=', ruleId).execute();
}

/** Creates an instance; undefined when another process created it first. */
export async function insertInstance(
  trx: Database,
  row: Insertable<AlertInstancesTable>,
): Promise<InstanceRow | undefined> {
  return trx
    .insertInto('alert_instances')
    .values(row)
    .onConflict((oc) => oc.columns(['rule_id', 'subject']).doNothing())
    .returningAll()
    .executeTakeFirst();
}

/** Writes an instance only if nobody wrote it since it was read at `version`; undefined otherwise. */
export async function updateInstance(
  trx: Database,
  id: number,
  version: number,
  values: Updateable<AlertInstancesTable>,
): Promise<InstanceRow | undefined> {
  return trx
    .updateTable('alert_instances')
    .set({ ...values, version: sql`version + 1` })
    .where('id', '=', id)
    .where('version', '=', version)
    .returningAll()
    .executeTakeFirst();
}

export interface AlertFilter {
  pools: number[] | 'all';
  states?: AlertState[];
  ruleId?: number;
  poolId?: number;
  hostId?: number;
  severity?: AlertSeverity;
  /** Changed state at or after this time. */
  since?: Date;
}

export async function listInstances(db: Database, f: AlertFilter, page: { limit: number; offset: number }) {
  let q = db.selectFrom('alert_instances as i').innerJoin('alert_rules as r', 'r.id', 'i.rule_id');
  if (f.pools !== 'all') q = q.where('i.pool_id', 'in', f.pools.length ? f.pools : [0]);
  if (f.states?.length) q = q.where('i.state', 'in', f.states);
  if (f.ruleId !== undefined) q = q.where('i.rule_id', '=', f.ruleId);
  if (f.poolId !== undefined) q = q.where('i.pool_id', '=', f.poolId);
  if (f.hostId !== undefined) q = q.where('i.host_id', '=', f.hostId);
  if (f.severity !== undefined) q = q.where('r.severity', '=', f.severity);
  if (f.since !== undefined) q = q.where('i.state_changed_at', '>=', f.since);
  const [items, count] = await Promise.all([
    q
      .selectAll('i')
      .select(['r.name as rule_name', 'r.severity', 'r.builtin'])
      .orderBy('i.state_changed_at', 'desc')
      .orderBy('i.id', 'desc')
      .limit(page.limit)
      .offset(page.offset)
      .execute(),
    q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow(),
  ]);
  return { items, total: Number(count.n) };
}

export async function instanceById(db: Database, id: number) {
  return db
    .selectFrom('alert_instances as i')
    .innerJoin('alert_rules as r', 'r.id', 'i.rule_id')
    .selectAll('i')
    .select(['r.name as rule_name', 'r.severity', 'r.builtin'])
    .where('i.id', '=', id)
    .executeTakeFirst();
}

// ---- channels

/**
 * The channels a notification about `poolChain[0]` goes to: the rule's own list if it has one, else every
 * enabled channel that is global or on the pool or one of its ancestors.
 */
export async function channelsFor(
  trx: Database,
  poolChain: number[],
  channelIds: number[] | null,
): Promise<ChannelRow[]> {
  let q = trx.selectFrom('notification_channels').selectAll().where('enabled', '=', true);
  if (channelIds) q = q.where('id', 'in', channelIds.length ? channelIds : [0]);
  else
    q = q.where((eb) =>
      eb.or([eb('pool_id', 'is', null), eb('pool_id', 'in', poolChain.length ? poolChain : [0])]),
    );
  return q.orderBy('id').execute();
}

export async function channelsByIds(db: Database, ids: number[]): Promise<ChannelRow[]> {
  if (!ids.length) return [];
  return db.selectFrom('notification_channels').selectAll().where('id', 'in', ids).execute();
}

export async function channelById(db: Database, id: number) {
  return db.selectFrom('notification_channels').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function listChannels(
  db: Database,
  pools: number[] | 'all',
  page: { limit: number; offset: number },
) {
  let q = db.selectFrom('notification_channels');
  if (pools !== 'all') q = q.where('pool_id', 'in', pools.length ? pools : [0]);
  const [items, count] = await Promise.all([
    q.selectAll().orderBy('id').limit(page.limit).offset(page.offset).execute(),
    q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow(),
  ]);
  return { items, total: Number(count.n) };
}

export async function insertChannel(
  db: Database,
  row: Insertable<NotificationChannelsTable>,
): Promise<number> {
  const { id } = await db
    .insertInto('notification_channels')
    .values(row)
    .returning('id')
    .executeTakeFirstOrThrow();
  return id;
}

export async function updateChannel(db: Database, id: number, values: Updateable<NotificationChannelsTable>) {
  return db
    .updateTable('notification_channels')
    .set(values)
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

export async function deleteChannel(db: Database, id: number): Promise<void> {
  await db.deleteFrom('notification_channels').where('id', '=', id).execute();
}

// ---- notifications

/**
 * Adds alerts to the group's open notification for a channel, or opens one that is sent at `notBefore`.
 * The partial unique index on open notifications makes this one row per channel and group, whoever adds.
 */
export async function addToGroup(
  trx: Database,
  n: {
    channelId: number;
    ruleId: number | null;
    poolId: number | null;
    groupKey: string;
    alerts: unknown[];
    now: Date;
    notBefore: Date;
  },
): Promise<void> {
  await trx
    .insertInto('notifications')
    .values({
      channel_id: n.channelId,
      rule_id: n.ruleId,
      pool_id: n.poolId,
      group_key: n.groupKey,
      status: 'grouping',
      alerts: JSON.stringify(n.alerts),
      created_at: n.now,
      not_before: n.notBefore,
      history: '[]',
    })
    .onConflict((oc) =>
      oc
        .columns(['channel_id', 'group_key'])
        .where('status', '=', 'grouping')
        .doUpdateSet({ alerts: sql`notifications.alerts || excluded.alerts` }),
    )
    .execute();
}

/**
 * Takes up to `limit` notifications due at `now` (or whose sender's lease ran out) for this process:
 * rows another process is taking are skipped, not waited for.
 */
export async function claimDue(
  db: Database,
  now: Date,
  leaseUntil: Date,
  limit: number,
): Promise<NotificationRow[]> {
  const { rows } = await sql<NotificationRow>`
    UPDATE notifications SET status = 'sending', locked_until = ${leaseUntil}, attempts = attempts + 1
    WHERE id IN (
      SELECT id FROM notifications
      WHERE (status IN ('grouping', 'retrying') AND not_before <= ${now})
         OR (status = 'sending' AND locked_until < ${now})
      ORDER BY not_before, id
      LIMIT ${limit}
      FOR UPDATE SKIP LOCKED
    )
    RETURNING *`.execute(db);
  return rows;
}

/** Records the outcome of an attempt, if this process still holds the notification. */
export async function finishAttempt(
  db: Database,
  id: number,
  attempts: number,
  values: Updateable<NotificationsTable>,
  historyEntry: Record<string, unknown>,
): Promise<boolean> {
  const res = await db
    .updateTable('notifications')
    .set({ ...values, history: sql`history || ${JSON.stringify([historyEntry])}::jsonb` })
    .where('id', '=', id)
    .where('status', '=', 'sending')
    .where('attempts', '=', attempts)
    .executeTakeFirst();
  return res.numUpdatedRows > 0n;
}

/** Stores what will be sent and returns it as PostgreSQL keeps it, so every attempt sends the same bytes. */
export async function setPayload(
  db: Database,
  id: number,
  payload: object,
): Promise<Record<string, unknown>> {
  const row = await db
    .updateTable('notifications')
    .set({ payload: JSON.stringify(payload) })
    .where('id', '=', id)
    .returning('payload')
    .executeTakeFirstOrThrow();
  return row.payload!;
}

export interface NotificationFilter {
  pools: number[] | 'all';
  channelId?: number;
  ruleId?: number;
  status?: NotificationStatus;
  alertId?: number;
}

export async function listNotifications(
  db: Database,
  f: NotificationFilter,
  page: { limit: number; offset: number },
) {
  let q = db.selectFrom('notifications');
  if (f.pools !== 'all') q = q.where('pool_id', 'in', f.pools.length ? f.pools : [0]);
  if (f.channelId !== undefined) q = q.where('channel_id', '=', f.channelId);
  if (f.ruleId !== undefined) q = q.where('rule_id', '=', f.ruleId);
  if (f.status !== undefined) q = q.where('status', '=', f.status);
  if (f.alertId !== undefined)
    q = q.where(sql<boolean>`alerts @> ${JSON.stringify([{ instanceId: f.alertId }])}::jsonb`);
  const [items, count] = await Promise.all([
    q.selectAll().orderBy('id', 'desc').limit(page.limit).offset(page.offset).execute(),
    q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow(),
  ]);
  return { items, total: Number(count.n) };
}

// ---- silences

export async function activeSilences(db: Database, now: Date): Promise<SilenceRow[]> {
  return db
    .selectFrom('silences')
    .selectAll()
    .where('starts_at', '<=', now)
    .where('ends_at', '>', now)
    .execute();
}

export async function listSilences(
  db: Database,
  f: { pools: number[] | 'all'; activeAt?: Date },
  page: { limit: number; offset: number },
) {
  let q = db.selectFrom('silences');
  if (f.pools !== 'all') {
    const pools = f.pools.length ? f.pools : [0];
    q = q.where((eb) => eb.or([eb('pool_id', 'is', null), eb('pool_id', 'in', pools)]));
  }
  if (f.activeAt) q = q.where('starts_at', '<=', f.activeAt).where('ends_at', '>', f.activeAt);
  const [items, count] = await Promise.all([
    q.selectAll().orderBy('id', 'desc').limit(page.limit).offset(page.offset).execute(),
    q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow(),
  ]);
  return { items, total: Number(count.n) };
}

export async function silenceById(db: Database, id: number) {
  return db.selectFrom('silences').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function insertSilence(db: Database, row: Insertable<SilencesTable>): Promise<number> {
  const { id } = await db.insertInto('silences').values(row).returning('id').executeTakeFirstOrThrow();
  return id;
}

export async function updateSilence(db: Database, id: number, values: Updateable<SilencesTable>) {
  return db
    .updateTable('silences')
    .set({ ...values, updated_at: sql`now()` })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

export async function deleteSilence(db: Database, id: number): Promise<void> {
  await db.deleteFrom('silences').where('id', '=', id).execute();
}

// ---- retention

/** Forgets finished notifications and alerts resolved before `before`, so history stays bounded. */
export async function pruneHistory(
  db: Database,
  before: Date,
): Promise<{ notifications: number; alerts: number }> {
  const notifications = await db
    .deleteFrom('notifications')
    .where('status', 'in', ['delivered', 'failed', 'silenced'])
    .where('created_at', '<', before)
    .executeTakeFirst();
  const alerts = await db
    .deleteFrom('alert_instances')
    .where('state', '=', 'ok')
    .where('state_changed_at', '<', before)
    .executeTakeFirst();
  return { notifications: Number(notifications.numDeletedRows), alerts: Number(alerts.numDeletedRows) };
}
