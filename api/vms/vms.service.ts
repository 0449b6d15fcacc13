import { randomUUID } from 'node:crypto';
import { assertPool, assertVm, vmVisibilityFilter } from '../access/access.service.js';
import { audit } from '../audit/audit.service.js';
import type { AuthUser } from '../auth/auth-user.js';
import { badRequest, conflict, forbidden, notFound } from '../http/errors.js';
import { DEFAULT_PLACEMENT_POLICY } from '../placement/inventory.js';
import { expandDecision, type StoredDecision } from '../placement/placement.js';
import { explainPlacement, showsHosts, withoutHosts } from '../placement/placement.service.js';
import { assertFitsLargestHost, claim } from '../quota/quota.service.js';
import { type LimitInput, limitColumns, limitFieldsIn, vmLimitsAnswer } from './limits.js';
import { applyVmLimits } from './limits.service.js';
import { invalidState, requestVmAction, type VmActionDeps } from './vm-actions.service.js';
import { randomMac } from './vm-spec.js';
import { isActive, VM_ACTION_RULES, type VmState } from './vm-states.js';
import {
  attachVolumes,
  detachVolumes,
  imageById,
  insertNics,
  insertVm,
  listVms,
  poolAndAncestors,
  type VmRow,
  vmById,
  vmParts,
  vmWithPools,
  volumesForAttach,
} from './vms.repository.js';

/** NICs a VM gets when the request names none: one on libvirt's default network. */
export const DEFAULT_NICS = 1;
export const DEFAULT_NETWORK = 'default';
/** Attempts at drawing MACs not used yet before giving up (2^24 addresses: a clash is rare). */
const MAC_ATTEMPTS = 8;

/** Limits (see limits.ts): each null for none; the VM pool's, when lower, wins. */
export interface CreateVmInput extends LimitInput {
  name: string;
  poolId: number;
  vcpus: number;
  memoryMiB: number;
  volumes?: number[];
  nics?: number | Array<{ network?: string }>;
  imageId?: number;
  linuxBoot?: LinuxBoot | null;
  /** Overrides the host's virtualization type (null: the host's). */
  virtType?: 'kvm' | 'qemu' | null;
  /** Never moved by the balancer. */
  pinned?: boolean;
}

/** Direct Linux boot from files on the host (oVirt's "Linux boot options"). */
export interface LinuxBoot {
  kernel: string;
  initrd?: string;
  cmdline?: string;
}

/** Limits (see limits.ts) apply at once to a running or paused VM (live and in its definition on the host). */
export interface PatchVmInput extends LimitInput {
  name?: string;
  vcpus?: number;
  memoryMiB?: number;
  /** The full list of attached volumes wanted. */
  volumes?: number[];
  /** Boot from the install image (network or ISO) first; herd's PXE service turns it off once installed. */
  bootNetwork?: boolean;
  linuxBoot?: LinuxBoot | null;
  /** Overrides the host's virtualization type from the next start (null: the host's). */
  virtType?: 'kvm' | 'qemu' | null;
  /** Never moved by the balancer. */
  pinned?: boolean;
}

/** The paths name files on the host, which qemu reads as root: only the super-admin sets them. */
function linuxBootColumns(user: AuthUser, boot: LinuxBoot | null | undefined) {
  if (boot === undefined) return {};
  if (!user.isSuperAdmin)
    throw forbidden('linuxBoot: only the super-admin may boot a VM from files on its host');
  return {
    boot_kernel: boot?.kernel ?? null,
    boot_initrd: boot?.initrd ?? null,
    boot_cmdline: boot?.cmdline ?? null,
  };
}

type Parts = Awaited<ReturnType<typeof vmParts>>;

export function toVmAnswer(vm: VmRow, parts: Parts) {
  const image = parts.images.find((i) => i.vm_id === vm.id);
  return {
    id: vm.id,
    uuid: vm.uuid,
    name: vm.name,
    poolId: vm.pool_id,
    ownerId: vm.owner_id,
    state: vm.state,
    hostId: vm.host_id,
    migrationHostId: vm.migration_host_id,
    vcpus: vm.vcpus,
    memoryMiB: vm.memory_mib,
    bootNetwork: vm.boot_network,
    ...vmLimitsAnswer(vm, parts.poolLimits.get(vm.id)),
    virtType: vm.virt_type,
    pinned: vm.pinned,
    linuxBoot: vm.boot_kernel
      ? { kernel: vm.boot_kernel, initrd: vm.boot_initrd, cmdline: vm.boot_cmdline }
      : null,
    image: image
      ? { id: image.id, name: image.name, kind: image.iso_volume_id !== null ? 'iso' : 'network' }
      : null,
    volumes: parts.volumes
      .filter((v) => v.vm_id === vm.id)
      .map((v) => ({
        id: v.id,
        name: v.name,
        sizeGiB: v.size_gib,
        path: v.path,
        storagePoolId: v.storage_pool_id,
      })),
    nics: parts.nics.filter((n) => n.vm_id === vm.id).map((n) => ({ mac: n.mac, network: n.network })),
    taskId: vm.task_id,
    savePath: vm.save_path,
    startedAt: vm.started_at?.toISOString() ?? null,
    stateChangedAt: vm.state_changed_at.toISOString(),
    createdAt: vm.created_at.toISOString(),
  };
}
export type VmAnswer = ReturnType<typeof toVmAnswer>;

export async function getVm(deps: VmActionDeps, user: AuthUser, id: number): Promise<VmAnswer> {
  const vm = await vmById(deps.db, id);
  if (!vm) throw notFound('vm');
  await assertVm(deps.db, user, vm, 'view');
  return toVmAnswer(vm, await vmParts(deps.db, [vm.id]));
}

export async function listVisibleVms(
  deps: VmActionDeps,
  user: AuthUser,
  filter: { poolId?: number; hostId?: number; state?: string; limit: number; offset: number },
): Promise<{ items: VmAnswer[]; total: number }> {
  const { items, total } = await listVms(deps.db, await vmVisibilityFilter(deps.db, user), filter);
  const parts = await vmParts(
    deps.db,
    items.map((v) => v.id),
  );
  return { items: items.map((v) => toVmAnswer(v, parts)), total };
}

function normalizeNics(nics: CreateVmInput['nics']): Array<{ network: string }> {
  if (nics === undefined) return Array.from({ length: DEFAULT_NICS }, () => ({ network: DEFAULT_NETWORK }));
  if (typeof nics === 'number') return Array.from({ length: nics }, () => ({ network: DEFAULT_NETWORK }));
  return nics.map((n) => ({ network: n.network ?? DEFAULT_NETWORK }));
}

/**
 * Records a VM (state `defined`: known to herd, on no host until it first starts) owned by the caller, with its
 * volumes attached (each to at most one VM), NICs with fresh MACs and an optional install image. Storage counts
 * against the quota from now on, so it is claimed here; vCPUs, memory and NICs are claimed at start.
 */
export async function createVm(
  deps: VmActionDeps,
  user: AuthUser,
  input: CreateVmInput,
): Promise<{ id: number }> {
  await assertPool(deps.db, user, input.poolId, 'control');
  const chain = await poolAndAncestors(deps.db, input.poolId);
  const pool = await deps.db
    .selectFrom('pools')
    .select('kind')
    .where('id', '=', input.poolId)
    .executeTakeFirst();
  if (pool?.kind !== 'vm')
    throw badRequest(`poolId: VMs live in VM pools; pool ${input.poolId} is a hardware pool`);
  const image = input.imageId === undefined ? undefined : await imageById(deps.db, input.imageId);
  if (input.imageId !== undefined && !image) throw badRequest(`imageId: image ${input.imageId} not found`);
  const nics = normalizeNics(input.nics);
  const volumeIds = [...new Set(input.volumes ?? [])];
  const boot = linuxBootColumns(user, input.linuxBoot);

  return deps.db.transaction().execute(async (trx) => {
    const volumes = await checkVolumes(trx, volumeIds, chain);
    await claim(trx, {
      poolId: input.poolId,
      userId: user.id,
      delta: { storageGiB: volumes.reduce((sum, v) => sum + v.size_gib, 0) },
      hardwarePoolMax: { vcpus: input.vcpus, memoryMiB: input.memoryMiB },
    });
    const id = await insertVm(trx, {
      uuid: randomUUID(),
      name: input.name,
      poolId: input.poolId,
      ownerId: user.id,
      vcpus: input.vcpus,
      memoryMiB: input.memoryMiB,
      imageId: image?.id ?? null,
      bootNetwork: image !== undefined,
      ...boot,
      ...limitColumns(input),
      virt_type: input.virtType ?? null,
      pinned: input.pinned ?? false,
    }).catch(nameTaken(input.name));
    await attachOrConflict(trx, id, volumeIds);
    await addNics(trx, id, nics);
    await audit(trx, {
      userId: user.id,
      action: 'vm.create',
      entityType: 'vm',
      entityId: id,
      after: { ...input, id },
    });
    return { id };
  });
}

/** Volumes must exist, be free, and belong to storage of a pool on the VM pool's way up the tree. */
async function checkVolumes(trx: VmActionDeps['db'], ids: number[], poolChain: number[]) {
  const volumes = await volumesForAttach(trx, ids);
  for (const id of ids) {
    const v = volumes.find((x) => x.id === id);
    if (!v) throw badRequest(`volumes: volume ${id} not found`);
    if (!poolChain.includes(v.pool_id)) {
      throw badRequest(
        `volumes: volume ${id} is in storage of pool ${v.pool_id}, which the VM's pool is not in`,
      );
    }
  }
  return volumes;
}

async function attachOrConflict(trx: VmActionDeps['db'], vmId: number, ids: number[]) {
  const attached = await attachVolumes(trx, vmId, ids);
  const taken = ids.filter((id) => !attached.includes(id));
  if (taken.length) {
    throw conflict('volume_in_use', `volume ${taken.join(', ')} is attached to another VM`, {
      volumes: taken,
    });
  }
}

async function addNics(trx: VmActionDeps['db'], vmId: number, nics: Array<{ network: string }>) {
  let missing = nics;
  for (let attempt = 0; missing.length && attempt < MAC_ATTEMPTS; attempt++) {
    const batch = missing.map((n) => ({ ...n, mac: randomMac() }));
    const inserted = await insertNics(trx, vmId, batch);
    missing = missing.slice(inserted);
  }
  if (missing.length) throw new Error('could not draw unused MAC addresses');
}

function nameTaken(name: string) {
  return (err: unknown): never => {
    if ((err as { code?: string }).code === '23505') {
      throw conflict('name_taken', `a VM named ${name} already exists in this pool`);
    }
    throw err;
  };
}

/** States in which a VM's size and disks may change (not running, no saved memory image, no task). */
const RESHAPEABLE: readonly VmState[] = ['defined', 'shutoff', 'crashed'];

/**
 * Changes a VM's record. Size and volumes change only while it is stopped (it picks them up at its next
 * start); added volumes claim storage quota, like at creation. The name changes any time.
 */
export async function patchVm(
  deps: VmActionDeps,
  user: AuthUser,
  id: number,
  input: PatchVmInput,
): Promise<VmAnswer> {
  const vm = await vmWithPools(deps.db, id);
  if (!vm) throw notFound('vm');
  await assertVm(deps.db, user, vm, 'modify');
  const reshape = input.vcpus !== undefined || input.memoryMiB !== undefined || input.volumes !== undefined;
  const notReshapeable = (state: string) =>
    conflict(
      'invalid_state',
      `cannot change the size or volumes of VM ${vm.name} (${vm.id}): it is ${state}; stop it first`,
      { state },
    );
  if (reshape && !RESHAPEABLE.includes(vm.state as VmState)) throw notReshapeable(vm.state);
  // A task under way (start, migration…) defines the domain from the record it read: wait for it.
  const limited = limitFieldsIn(input);
  const limiting = limited.length > 0;
  const taskUnderWay = (now: { state: string; task_id: number | null }) =>
    conflict(
      'invalid_state',
      `cannot change the limits of VM ${vm.name} (${vm.id}) while it is ${now.state}; wait for task ${now.task_id}`,
      { state: now.state },
    );
  if (limiting && vm.task_id !== null) throw taskUnderWay(vm);
  const before = toVmAnswer(vm, await vmParts(deps.db, [vm.id]));
  await deps.db.transaction().execute(async (trx) => {
    const vcpus = input.vcpus ?? vm.vcpus;
    const memoryMiB = input.memoryMiB ?? vm.memory_mib;
    if (input.vcpus !== undefined || input.memoryMiB !== undefined) {
      await assertFitsLargestHost(trx, vm.pool_id, { vcpus, memoryMiB });
    }
    if (input.volumes !== undefined) {
      const wanted = [...new Set(input.volumes)];
      const current = before.volumes.map((v) => v.id);
      const added = wanted.filter((v) => !current.includes(v));
      const volumes = await checkVolumes(trx, added, await poolAndAncestors(trx, vm.pool_id));
      await claim(trx, {
        poolId: vm.pool_id,
        userId: vm.owner_id,
        delta: { storageGiB: volumes.reduce((sum, v) => sum + v.size_gib, 0) },
      });
      await detachVolumes(
        trx,
        vm.id,
        current.filter((v) => !wanted.includes(v)),
      );
      await attachOrConflict(trx, vm.id, added);
    }
    const patch = {
      ...(input.name !== undefined ? { name: input.name } : {}),
      ...(input.vcpus !== undefined ? { vcpus } : {}),
      ...(input.memoryMiB !== undefined ? { memory_mib: memoryMiB } : {}),
      ...(input.bootNetwork !== undefined ? { boot_network: input.bootNetwork } : {}),
      ...linuxBootColumns(user, input.linuxBoot),
      ...limitColumns(input),
      ...(input.virtType !== undefined ? { virt_type: input.virtType } : {}),
      ...(input.pinned !== undefined ? { pinned: input.pinned } : {}),
    };
    if (Object.keys(patch).length) {
      let update = trx.updateTable('vms').set(patch).where('id', '=', vm.id);
      // A size change holds only if the VM is still stopped as read (a start may have claimed meanwhile).
      if (reshape) update = update.where('state', '=', vm.state);
      if (limiting) update = update.where('task_id', 'is', null);
      const changed = await update.executeTakeFirst().catch(nameTaken(input.name ?? vm.name));
      if (changed.numUpdatedRows === 0n) {
        const now = await vmById(trx, vm.id);
        if (limiting && now?.task_id != null) throw taskUnderWay(now);
        throw notReshapeable(now?.state ?? 'deleted');
      }
    }
    // On the host before the change commits: a host that refuses leaves the record as it was.
    await applyVmLimits({ db: trx, hostConnections: deps.hostConnections }, vm.id, limited);
    await audit(trx, {
      userId: user.id,
      action: 'vm.update',
      entityType: 'vm',
      entityId: vm.id,
      before,
      after: input,
    });
  });
  return getVm(deps, user, id);
}

/**
 * Deletes a stopped VM: one on no host goes at once (204); otherwise a `delete` task undefines its domain
 * first (202 with the task). Its volumes are freed, its NICs go with it.
 */
export async function deleteVm(
  deps: VmActionDeps,
  user: AuthUser,
  id: number,
): Promise<{ taskId: number } | { deleted: true }> {
  const vm = await vmById(deps.db, id);
  if (!vm) throw notFound('vm');
  await assertVm(deps.db, user, vm, 'modify');
  if (!VM_ACTION_RULES.delete.from.includes(vm.state as VmState)) throw invalidState(vm, 'delete', vm.state);
  if (vm.host_id === null) {
    const deleted = await deps.db.transaction().execute(async (trx) => {
      const gone = await trx
        .deleteFrom('vms')
        .where('id', '=', vm.id)
        .where('state', '=', vm.state)
        .where('host_id', 'is', null)
        .executeTakeFirst();
      if (gone.numDeletedRows === 0n) return false;
      await audit(trx, {
        userId: user.id,
        action: 'vm.delete',
        entityType: 'vm',
        entityId: vm.id,
        before: { name: vm.name },
      });
      return true;
    });
    if (deleted) return { deleted: true };
  }
  return requestVmAction(deps, user, id, { action: 'delete' });
}

/**
 * The last placement decision for the VM (kept when it was made) and the one placement would make now for
 * it, each explaining every candidate host — to those who may list the hardware pool's hosts; others get the
 * outcomes without the candidates (withoutHosts).
 */
export async function vmPlacement(deps: VmActionDeps, user: AuthUser, id: number) {
  const vm = await vmWithPools(deps.db, id);
  if (!vm) throw notFound('vm');
  await assertVm(deps.db, user, vm, 'view');
  const hypothetical = await explainPlacement(deps.db, {
    vm,
    request: { vcpus: vm.vcpus, memoryMiB: vm.memory_mib },
    excludeHostIds: isActive(vm.state) && vm.host_id !== null ? [vm.host_id] : undefined,
    live: deps.liveView,
  });
  const stored = vm.placement as StoredDecision | null;
  const names = new Map(hypothetical.candidates.map((c) => [c.hostId, c.hostname]));
  const last = stored ? expandDecision(stored, names) : null;
  const now = { ...hypothetical, action: isActive(vm.state) ? 'migrate' : 'start' };
  const shown = await showsHosts(deps.db, user, vm.hardware_pool_id);
  return {
    vmId: vm.id,
    hardwarePoolId: vm.hardware_pool_id,
    policy: vm.placement_policy ?? DEFAULT_PLACEMENT_POLICY,
    last: last && !shown ? withoutHosts(last) : last,
    hypothetical: shown ? now : withoutHosts(now),
  };
}
