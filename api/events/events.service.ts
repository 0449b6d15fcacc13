import type { Database } from '../../schema/db.js';
import { assertVm, visiblePoolIds, vmVisibilityFilter } from '../access/access.service.js';
import type { AuthUser } from '../auth/auth-user.js';
import { hostFor } from '../hosts/hosts.service.js';
import { notFound } from '../http/errors.js';
import { vmById } from '../vms/vms.repository.js';
import {
  type EventFilter,
  type EventRow,
  type EventVisibility,
  listEvents,
  type StoredSeverity,
} from './events.repository.js';

/** Severities as the API names them (collectd's FAILURE, WARNING, OKAY). */
export const EVENT_SEVERITIES = ['failure', 'warning', 'okay'] as const;
export type EventSeverity = (typeof EVENT_SEVERITIES)[number];

export const storedSeverity = (s: EventSeverity): StoredSeverity => s.toUpperCase() as StoredSeverity;

export interface EventQuery {
  hostId?: number;
  vmId?: number;
  severity?: EventSeverity;
  plugin?: string;
  type?: string;
  since?: string;
  until?: string;
  limit: number;
  offset: number;
}

/** A collectd notification in API shape. */
export interface EventAnswer {
  id: number;
  time: string;
  receivedAt: string;
  severity: EventSeverity | string;
  host: string;
  plugin: string;
  pluginInstance: string;
  type: string;
  typeInstance: string;
  message: string;
  hostId: number | null;
  vmId: number | null;
}

export function toEventAnswer(r: EventRow): EventAnswer {
  return {
    id: r.id,
    time: r.time.toISOString(),
    receivedAt: r.received_at.toISOString(),
    severity: r.severity.toLowerCase(),
    host: r.host,
    plugin: r.plugin,
    pluginInstance: r.plugin_instance,
    type: r.type,
    typeInstance: r.type_instance,
    message: r.message,
    hostId: r.host_id,
    vmId: r.vm_id,
  };
}

async function visibilityOf(db: Database, user: AuthUser): Promise<EventVisibility> {
  const hostPools = await visiblePoolIds(db, user);
  if (hostPools === 'all') return 'all';
  return { hostPools, vms: await vmVisibilityFilter(db, user) };
}

function toFilter(q: EventQuery): EventFilter {
  return {
    hostId: q.hostId,
    vmId: q.vmId,
    severity: q.severity === undefined ? undefined : storedSeverity(q.severity),
    plugin: q.plugin,
    type: q.type,
    since: q.since === undefined ? undefined : new Date(q.since),
    until: q.until === undefined ? undefined : new Date(q.until),
    limit: q.limit,
    offset: q.offset,
  };
}

async function answer(db: Database, user: AuthUser, q: EventQuery) {
  const { items, total } = await listEvents(db, await visibilityOf(db, user), toFilter(q));
  return { items: items.map(toEventAnswer), total };
}

/** The notifications the caller may see, newest first. */
export function listVisibleEvents(db: Database, user: AuthUser, q: EventQuery) {
  return answer(db, user, q);
}

/** A host's notifications (its guests' included, those the caller sees); 404 for a host it may not see. */
export async function hostEvents(db: Database, user: AuthUser, hostId: number, q: EventQuery) {
  await hostFor({ db }, user, hostId, 'view');
  return answer(db, user, { ...q, hostId, vmId: undefined });
}

/** A VM's notifications; 404 for a VM the caller may not see. */
export async function vmEvents(db: Database, user: AuthUser, vmId: number, q: EventQuery) {
  const vm = await vmById(db, vmId);
  if (!vm) throw notFound('vm');
  await assertVm(db, user, vm, 'view');
  return answer(db, user, { ...q, vmId, hostId: undefined });
}
