import { type EventAnswer, toEventAnswer } from '../../api/events/events.service.js';
import type { Logger } from '../../lib/log.js';
import type { Database } from '../../schema/db.js';
import {
  activeTaskIds,
  allHosts,
  allVmIds,
  type EventLiveRow,
  eventsReceivedAfter,
  type HostRow,
  lastTaskId,
  type TaskRow,
  tasksToWatch,
  type VmRow,
  vmsChangedSince,
} from './live.repository.js';
import { rooms, vmRooms } from './live-rooms.js';

/** What browsers receive, by socket.io event name. */
export interface HostLive {
  id: number;
  poolId: number;
  hostname: string;
  state: string;
  enabled: boolean;
}
export interface VmLive {
  id: number;
  poolId: number;
  ownerId: number;
  hostId: number | null;
  name: string;
  state: string;
}
export interface TaskLive {
  id: number;
  state: string;
  action: string;
  targetType: string;
  targetId: number;
  poolId: number | null;
  userId: number | null;
  progress: number | null;
  error: string | null;
}

/** A collectd notification as it arrives: the API's event (api/events), sent as `event`. */
export type EventLive = EventAnswer;

export type Send = (
  event: 'host' | 'vm' | 'task' | 'event',
  to: string[],
  data: HostLive | VmLive | TaskLive | EventLive,
) => void;

const hostLive = (h: HostRow): HostLive => ({
  id: h.id,
  poolId: h.pool_id,
  hostname: h.hostname,
  state: h.state,
  enabled: h.enabled,
});
const vmLive = (v: VmRow): VmLive => ({
  id: v.id,
  poolId: v.pool_id,
  ownerId: v.owner_id,
  hostId: v.host_id,
  name: v.name,
  state: v.state,
});
const sameHost = (a: HostRow, b: HostRow) =>
  a.state === b.state && a.enabled === b.enabled && a.pool_id === b.pool_id && a.hostname === b.hostname;
const sameVm = (a: VmRow, b: VmRow) =>
  a.state === b.state && a.host_id === b.host_id && a.name === b.name && a.pool_id === b.pool_id;
const OVERLAP_MS = 5000;
/** Notifications read per look. */
const EVENT_PAGE = 1000;
const taskKey = (t: TaskRow) => `${t.state}|${t.progress}|${t.error}`;

/**
 * Notices host, VM and task changes in the database, whichever herd process made them (an API, a worker), and
 * sends each change once to the rooms of what it is about. Changes announced in this process (`hostChanged`,
 * `vmChanged`) go out at once and are not sent again when the database shows them.
 */
export class ChangeWatcher {
  readonly hosts = new Map<number, HostRow>();
  readonly vms = new Map<number, VmRow>();
  private readonly tasks = new Map<number, string>();
  /** When this process last announced each host and VM: database rows read before that are stale. */
  private readonly announced = new Map<string, number>();
  private taskAfter = 0;
  private since?: Date;
  /** Notifications already sent, by id, with when they were stored: the overlap reads them again. */
  private readonly sentEvents = new Map<number, number>();
  private eventsAfter?: { at: Date; id: number };
  private timer?: NodeJS.Timeout;
  private ticks = 0;
  private running?: Promise<void>;

  constructor(
    private readonly db: Database,
    private readonly send: Send,
    private readonly log: Logger,
    private readonly everyMs = 500,
  ) {}

  async start(): Promise<void> {
    if (this.timer) return;
    for (const h of await allHosts(this.db)) this.hosts.set(h.id, h);
    const { rows, now } = await vmsChangedSince(this.db, undefined);
    for (const v of rows) this.vms.set(v.id, v);
    this.since = now;
    this.eventsAfter = { at: now, id: 0 };
    this.taskAfter = await lastTaskId(this.db);
    for (const id of await activeTaskIds(this.db)) this.tasks.set(id, '');
    this.timer = setInterval(() => void this.tick(), this.everyMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  hostChanged(row: HostRow): void {
    this.announced.set(`host:${row.id}`, Date.now());
    this.hostSeen(row);
  }

  private hostSeen(row: HostRow): void {
    const known = this.hosts.get(row.id);
    this.hosts.set(row.id, row);
    if (!known || !sameHost(known, row)) this.send('host', [rooms.pool(row.pool_id)], hostLive(row));
  }

  /** A VM change announced in this process (its owner is known once the VM has been seen). */
  vmChanged(change: {
    id: number;
    pool_id: number;
    host_id: number | null;
    name: string;
    state: string;
    at: Date;
  }): void {
    const known = this.vms.get(change.id);
    if (!known) return; // new to this process: the next tick reads it, owner included
    this.announced.set(`vm:${change.id}`, Date.now());
    const { at, ...fields } = change;
    const row = { ...known, ...fields, state_changed_at: at };
    this.vms.set(row.id, row);
    if (!sameVm(known, row))
      this.send('vm', vmRooms({ poolId: row.pool_id, ownerId: row.owner_id }), vmLive(row));
  }

  /**
   * collectd notifications stored since the last look, each sent once. `received_at` is its insert's
   * transaction start, so rows committed late are caught by reading a few seconds back.
   */
  private async pollEvents(): Promise<void> {
    const after = this.eventsAfter ?? { at: new Date(), id: 0 };
    const { rows, now } = await eventsReceivedAfter(this.db, after, EVENT_PAGE);
    // A full page: go on after its last row; else look a few seconds back again next time.
    const last = rows[rows.length - 1];
    this.eventsAfter =
      rows.length >= EVENT_PAGE
        ? { at: last.received_at, id: last.id }
        : { at: new Date(now.getTime() - OVERLAP_MS), id: 0 };
    for (const e of rows) {
      if (this.sentEvents.has(e.id)) continue;
      this.sentEvents.set(e.id, e.received_at.getTime());
      this.send('event', eventRooms(e), toEventAnswer(e));
    }
    const forget = after.at.getTime() - OVERLAP_MS;
    for (const [id, at] of this.sentEvents) if (at < forget) this.sentEvents.delete(id);
  }

  tick(): Promise<void> {
    this.running ??= this.poll()
      .catch((err) => this.log.warn({ err: (err as Error).message }, 'live change watcher: query failed'))
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  private async poll(): Promise<void> {
    this.ticks++;
    const readAt = Date.now();
    const stale = (key: string) => (this.announced.get(key) ?? 0) > readAt;
    for (const h of await allHosts(this.db)) if (!stale(`host:${h.id}`)) this.hostSeen(h);

    // state_changed_at is its transaction's start: reading a few seconds back still sees slow transactions.
    const since = this.since ? new Date(this.since.getTime() - OVERLAP_MS) : undefined;
    const { rows, now } = await vmsChangedSince(this.db, since);
    this.since = now;
    for (const v of rows) {
      const known = this.vms.get(v.id);
      // Announced meanwhile, or older than what was announced: the database has not caught up.
      if (stale(`vm:${v.id}`) || (known && v.state_changed_at < known.state_changed_at)) continue;
      this.vms.set(v.id, v);
      if (!known || !sameVm(known, v))
        this.send('vm', vmRooms({ poolId: v.pool_id, ownerId: v.owner_id }), vmLive(v));
    }
    if (this.ticks % 10 === 0) {
      const present = new Set(await allVmIds(this.db));
      for (const [id, v] of this.vms) {
        if (present.has(id)) continue;
        this.vms.delete(id);
        this.announced.delete(`vm:${id}`);
        this.send('vm', vmRooms({ poolId: v.pool_id, ownerId: v.owner_id }), {
          ...vmLive(v),
          state: 'deleted',
        });
      }
    }

    await this.pollEvents();

    for (const t of await tasksToWatch(this.db, this.taskAfter, [...this.tasks.keys()])) {
      this.taskAfter = Math.max(this.taskAfter, t.id);
      const key = taskKey(t);
      if (this.tasks.get(t.id) === key) continue;
      if (t.state === 'queued' || t.state === 'running') this.tasks.set(t.id, key);
      else this.tasks.delete(t.id);
      this.send('task', taskRooms(t), {
        id: t.id,
        state: t.state,
        action: t.action,
        targetType: t.target_type,
        targetId: t.target_id,
        poolId: t.pool_id,
        userId: t.user_id,
        progress: t.progress,
        error: t.error,
      });
    }
  }
}

/** A VM's notification is seen by who sees the VM, any other by who sees its host's pool (else super-admins). */
function eventRooms(e: EventLiveRow): string[] {
  if (e.vm_id !== null)
    return e.vm_pool_id === null || e.vm_owner_id === null
      ? []
      : vmRooms({ poolId: e.vm_pool_id, ownerId: e.vm_owner_id });
  return e.host_pool_id === null ? [] : [rooms.pool(e.host_pool_id)];
}

/** A task on a VM is seen by who sees the VM; any other by who sees its pool; always by who asked for it. */
function taskRooms(t: TaskRow): string[] {
  const out = t.user_id === null ? [] : [rooms.user(t.user_id)];
  if (t.pool_id === null) return out;
  if (t.target_type === 'vm' && t.vm_owner_id !== null)
    return [...out, ...vmRooms({ poolId: t.pool_id, ownerId: t.vm_owner_id })];
  if (t.target_type === 'vm') return [...out, rooms.poolVms(t.pool_id)];
  return [...out, rooms.pool(t.pool_id)];
}
