import type { HostLiveSummary } from '../../ingest/live-view.js';
import { assertPool, visiblePoolIds, vmVisibilityFilter } from '../access/access.service.js';
import type { AppDeps } from '../app.js';
import { audit } from '../audit/audit.service.js';
import type { AuthUser } from '../auth/auth-user.js';
import { badRequest, conflict, HttpError, notFound } from '../http/errors.js';
import {
  chooseVirtType,
  type HostConnections,
  type HostInventory,
  type VirtTypeSetting,
} from './driver/index.js';
import { emitHostState } from './host-events.js';
import { collectdSilent } from './host-state.js';
import {
  countVmsOnHost,
  deleteHost,
  findHost,
  findHostByUri,
  type HostPatch,
  type HostRow,
  insertHost,
  isInPoolTree,
  listHosts,
  poolKind,
  updateHost,
  upsertRegisteredHost,
  vmPoolsOnHost,
  vmsOnHosts,
} from './hosts.repository.js';

/** Where hosts that announce themselves (or are found over mDNS) land, disabled. */
export const DEFAULT_HARDWARE_POOL_ID = 1;

export type HostDeps = Pick<AppDeps, 'db' | 'log' | 'liveView' | 'events'> & {
  hostConnections: HostConnections;
};

export interface HostAnswer {
  id: number;
  poolId: number;
  uri: string;
  hostname: string;
  uuid: string | null;
  arch: string | null;
  cpus: number;
  cores: number | null;
  mhz: number | null;
  memoryMiB: number;
  nics: unknown[];
  enabled: boolean;
  state: string;
  lastSeen: string | null;
  heartbeatAt: string | null;
  heartbeatError: string | null;
  reservedVcpus: number;
  reservedMemoryMiB: number;
  cpuAllocationRatio: number | null;
  ramAllocationRatio: number | null;
  virtType: VirtTypeSetting;
  effectiveVirtType: 'kvm' | 'qemu' | 'test' | null;
  virtTypeReason: string;
  collectd: { lastSeen: string | null; interval: number | null; silent: boolean };
  live: Omit<HostLiveSummary, 'lastSeen'> | null;
  vms: Array<{ id: number; name: string; state: string }>;
  createdAt: string;
}

export function toHostAnswer(
  row: HostRow,
  live: HostLiveSummary | undefined,
  vms: Array<{ id: number; name: string; state: string }>,
  now = Date.now(),
): HostAnswer {
  const dbSeen = row.last_seen_at ? row.last_seen_at.getTime() : null;
  const lastSeen = Math.max(dbSeen ?? 0, live?.lastSeen ?? 0) || null;
  const interval = live?.interval ?? null;
  let figures: Omit<HostLiveSummary, 'lastSeen'> | null = null;
  if (live) {
    const { lastSeen: _seen, ...rest } = live;
    figures = rest;
  }
  const virt = chooseVirtType(
    row.virt_domain_types
      ? { domainTypes: row.virt_domain_types, cpuVirtFeatures: row.cpu_virt_features ?? [] }
      : null,
    row.virt_type,
  );
  return {
    id: row.id,
    poolId: row.pool_id,
    uri: row.uri,
    hostname: row.hostname,
    uuid: row.uuid,
    arch: row.arch,
    cpus: row.cpus,
    cores: row.cores,
    mhz: row.mhz,
    memoryMiB: Number(row.memory_mib),
    nics: row.nics,
    enabled: row.enabled,
    state: row.state,
    lastSeen: lastSeen ? new Date(lastSeen).toISOString() : null,
    heartbeatAt: row.heartbeat_at?.toISOString() ?? null,
    heartbeatError: row.heartbeat_error,
    reservedVcpus: row.reserved_vcpus,
    reservedMemoryMiB: Number(row.reserved_memory_mib),
    cpuAllocationRatio: row.cpu_allocation_ratio,
    ramAllocationRatio: row.ram_allocation_ratio,
    virtType: row.virt_type,
    effectiveVirtType: virt.type,
    virtTypeReason: virt.reason,
    collectd: {
      lastSeen: lastSeen ? new Date(lastSeen).toISOString() : null,
      interval,
      silent: collectdSilent(lastSeen, interval, now),
    },
    live: figures,
    vms,
    createdAt: row.created_at.toISOString(),
  };
}

async function answerFor(deps: HostDeps, user: AuthUser, rows: HostRow[]): Promise<HostAnswer[]> {
  const vms = await vmsOnHosts(
    deps.db,
    rows.map((r) => r.id),
    await vmVisibilityFilter(deps.db, user),
  );
  return rows.map((r) => toHostAnswer(r, deps.liveView?.hostSummary(r.hostname), vms.get(r.id) ?? []));
}

async function assertHardwarePool(deps: HostDeps, user: AuthUser, poolId: number): Promise<void> {
  await assertPool(deps.db, user, poolId, 'modify');
  if ((await poolKind(deps.db, poolId)) !== 'hardware') {
    throw badRequest(`poolId: pool ${poolId} is a VM pool; hosts belong to hardware pools`, {
      field: 'poolId',
    });
  }
}

/** Reads the inventory through the host's (cached) driver; an unreachable host is the caller's problem. */
async function readInventory(deps: HostDeps, uri: string): Promise<HostInventory> {
  try {
    const driver = await deps.hostConnections.get(uri);
    return await driver.inventory();
  } catch (err) {
    throw new HttpError(400, 'host_unreachable', `uri: ${(err as Error).message}`, { field: 'uri' });
  }
}

export async function addHost(
  deps: HostDeps,
  user: AuthUser,
  body: { uri: string; poolId: number },
): Promise<HostAnswer> {
  await assertHardwarePool(deps, user, body.poolId);
  if (await findHostByUri(deps.db, body.uri))
    throw conflict('host_exists', `a host with uri ${body.uri} exists`);
  const inventory = await readInventory(deps, body.uri);
  const row = await deps.db.transaction().execute(async (trx) => {
    const host = await insertHost(trx, { poolId: body.poolId, uri: body.uri, enabled: true, inventory });
    await audit(trx, {
      userId: user.id,
      action: 'host.create',
      entityType: 'host',
      entityId: host.id,
      after: host,
    });
    return host;
  });
  deps.log.info({ hostId: row.id, uri: row.uri, hostname: row.hostname }, 'host added');
  return toHostAnswer(row, deps.liveView?.hostSummary(row.hostname), []);
}

export async function registerHost(
  deps: HostDeps,
  user: AuthUser,
  body: { uri: string; inventory: HostInventory },
): Promise<{ host: HostAnswer; created: boolean }> {
  // Registering is adding hosts to the default pool: the token's user must be allowed to change it.
  await assertPool(deps.db, user, DEFAULT_HARDWARE_POOL_ID, 'modify');
  const { row, created } = await deps.db.transaction().execute(async (trx) => {
    const result = await upsertRegisteredHost(trx, {
      poolId: DEFAULT_HARDWARE_POOL_ID,
      uri: body.uri,
      inventory: body.inventory,
    });
    await audit(trx, {
      userId: user.id,
      action: result.created ? 'host.register' : 'host.inventory',
      entityType: 'host',
      entityId: result.row.id,
      after: result.row,
    });
    return result;
  });
  if (created)
    deps.log.info({ hostId: row.id, uri: row.uri }, 'host registered (disabled until an admin enables it)');
  return { host: toHostAnswer(row, deps.liveView?.hostSummary(row.hostname), []), created };
}

export async function listHostsFor(
  deps: HostDeps,
  user: AuthUser,
  query: { limit: number; offset: number; poolId?: number },
): Promise<{ items: HostAnswer[]; total: number }> {
  const poolIds = await visiblePoolIds(deps.db, user);
  const { items, total } = await listHosts(deps.db, { poolIds, ...query });
  return { items: await answerFor(deps, user, items), total };
}

/** The host if the caller can `need` it: 404 when its pool is invisible, 403 when only visible. */
export async function hostFor(
  deps: Pick<HostDeps, 'db'>,
  user: AuthUser,
  id: number,
  need: 'view' | 'control' | 'modify',
): Promise<HostRow> {
  const row = await findHost(deps.db, id);
  if (!row) throw notFound('host');
  await assertPool(deps.db, user, row.pool_id, need, 'host');
  return row;
}

export async function getHost(deps: HostDeps, user: AuthUser, id: number): Promise<HostAnswer> {
  const row = await hostFor(deps, user, id, 'view');
  return (await answerFor(deps, user, [row]))[0];
}

export interface HostPatchBody {
  enabled?: boolean;
  poolId?: number;
  reservedVcpus?: number;
  reservedMemoryMiB?: number;
  cpuAllocationRatio?: number | null;
  ramAllocationRatio?: number | null;
  virtType?: VirtTypeSetting;
}

export async function patchHost(
  deps: HostDeps,
  user: AuthUser,
  id: number,
  body: HostPatchBody,
): Promise<HostAnswer> {
  const before = await hostFor(deps, user, id, 'modify');
  if (body.poolId !== undefined && body.poolId !== before.pool_id) {
    await assertHardwarePool(deps, user, body.poolId);
    // Its VMs must stay inside the hardware pool that holds their VM pools.
    for (const vmPool of await vmPoolsOnHost(deps.db, id)) {
      if (!(await isInPoolTree(deps.db, body.poolId, vmPool))) {
        throw conflict(
          'host_has_vms',
          `host ${before.hostname} runs VMs of pool ${vmPool}, outside pool ${body.poolId}: evacuate it first`,
        );
      }
    }
  }
  if (body.reservedVcpus !== undefined && body.reservedVcpus > before.cpus) {
    throw badRequest(`reservedVcpus: ${body.reservedVcpus} is more than the host's ${before.cpus} CPUs`, {
      field: 'reservedVcpus',
    });
  }
  if (body.reservedMemoryMiB !== undefined && body.reservedMemoryMiB > Number(before.memory_mib)) {
    throw badRequest(`reservedMemoryMiB: more than the host's ${before.memory_mib} MiB`, {
      field: 'reservedMemoryMiB',
    });
  }
  const patch: HostPatch = {};
  if (body.enabled !== undefined) patch.enabled = body.enabled;
  if (body.poolId !== undefined) patch.pool_id = body.poolId;
  if (body.reservedVcpus !== undefined) patch.reserved_vcpus = body.reservedVcpus;
  if (body.reservedMemoryMiB !== undefined) patch.reserved_memory_mib = body.reservedMemoryMiB;
  if (body.cpuAllocationRatio !== undefined) patch.cpu_allocation_ratio = body.cpuAllocationRatio;
  if (body.ramAllocationRatio !== undefined) patch.ram_allocation_ratio = body.ramAllocationRatio;
  if (body.virtType !== undefined) patch.virt_type = body.virtType;
  if (Object.keys(patch).length === 0) return getHost(deps, user, id);
  const after = await deps.db.transaction().execute(async (trx) => {
    const row = await updateHost(trx, id, patch);
    if (!row) throw notFound('host');
    await audit(trx, {
      userId: user.id,
      action: 'host.update',
      entityType: 'host',
      entityId: id,
      before,
      after: row,
    });
    return row;
  });
  if (after.enabled !== before.enabled) {
    const live = deps.liveView?.hostSummary(after.hostname);
    emitHostState(deps.events, {
      hostId: after.id,
      hostname: after.hostname,
      poolId: after.pool_id,
      state: after.state,
      previous: before.state,
      heartbeatError: after.heartbeat_error,
      collectdSilent: collectdSilent(
        Math.max(after.last_seen_at?.getTime() ?? 0, live?.lastSeen ?? 0) || null,
        live?.interval ?? null,
      ),
      enabled: after.enabled,
      at: new Date().toISOString(),
    });
  }
  return getHost(deps, user, id);
}

export async function removeHost(deps: HostDeps, user: AuthUser, id: number): Promise<void> {
  const before = await hostFor(deps, user, id, 'modify');
  await deps.db.transaction().execute(async (trx) => {
    // Lock the row so a VM placed on it concurrently (claim in the same transaction as the quota) waits.
    await trx.selectFrom('hosts').select('id').where('id', '=', id).forUpdate().executeTakeFirst();
    const vms = await countVmsOnHost(trx, id);
    if (vms > 0)
      throw conflict('host_has_vms', `host ${before.hostname} still has ${vms} VM(s): evacuate it first`);
    await deleteHost(trx, id);
    await audit(trx, { userId: user.id, action: 'host.delete', entityType: 'host', entityId: id, before });
  });
  await deps.hostConnections.drop(before.uri);
}
