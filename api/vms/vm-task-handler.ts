import { access } from 'node:fs/promises';
import path from 'node:path';
import type { Database } from '../../schema/db.js';
import type { DomainInfo, HostConnections, HostDriver, VirtTypeSetting } from '../hosts/driver/index.js';
import type { TaskContext, TaskHandler } from '../tasks/task-handler.js';
import type { TaskRow } from '../tasks/tasks.repository.js';
import { saveDirProblem } from './save-dir.js';
import { buildDomainSpec } from './vm-spec.js';
import type { VmState, VmTaskAction } from './vm-states.js';
import { deleteVmRow, hostUris, settleVm, type VmRow, vmById, vmParts } from './vms.repository.js';

/** How long a graceful shutdown may take when the request names no timeout. */
export const DEFAULT_SHUTDOWN_TIMEOUT_SECONDS = 120;
/** How often a graceful shutdown looks whether the guest is off yet. */
export const SHUTDOWN_POLL_MS = 250;
/** How often a save, restore or live migration reads libvirt's job info for the task's progress. */
export const JOB_PROGRESS_POLL_MS = 500;
/**
 * Where hosts write saved VM images. It must be shared storage across a hardware pool for a saved VM to be
 * restored on (or cold-migrated to) another host; libvirt's test driver writes it on herd's own machine.
 */
export const DEFAULT_SAVE_DIR = '/var/lib/libvirt/qemu/save';

/** What requesting an action recorded in the task's args, to carry it out and to undo or recover it. */
export interface VmTaskArgs {
  /** The VM's state and host when the action was requested. */
  from: { state: VmState; hostId: number | null };
  /** The host the action runs on (start/restore: the one placement chose; migrate: the destination). */
  hostId?: number;
  timeoutSeconds?: number;
  force?: boolean;
  /** Why herd asked for it (the balancer's explanation of a move, the quota enforcer's of a save). */
  reason?: string;
}

export interface VmTaskHandlerOptions {
  hosts: HostConnections;
  saveDir?: string;
  /** Where guests reach herd's /pxe routes (HERD_PXE_BASE_URL): network installs on qemu's user network. */
  pxeBaseUrl?: string;
  /** Poll interval of a graceful shutdown (tests shorten it). */
  shutdownPollMs?: number;
  /** Poll interval of libvirt's job info while a save, restore or migration runs. */
  jobPollMs?: number;
}

/** Runs the VM actions (start, shutdown, destroy, suspend, resume, save, restore, migrate, delete) on libvirt hosts. */
export function createVmTaskHandler(options: VmTaskHandlerOptions): TaskHandler {
  const saveDir = options.saveDir ?? DEFAULT_SAVE_DIR;
  const pollMs = options.shutdownPollMs ?? SHUTDOWN_POLL_MS;
  const jobPollMs = options.jobPollMs ?? JOB_PROGRESS_POLL_MS;
  const withJob = <T>(driver: HostDriver, uuid: string, ctx: TaskContext, op: Promise<T>, from = 0) =>
    withJobProgress(driver, uuid, ctx, op, { everyMs: jobPollMs, from });

  const drivers = async (db: Database, ids: Array<number | null | undefined>) => {
    const wanted = [...new Set(ids.filter((id): id is number => typeof id === 'number'))];
    const rows = await hostUris(db, wanted);
    const byId = new Map(rows.map((r) => [r.id, r]));
    return {
      async get(id: number): Promise<HostDriver> {
        const host = byId.get(id);
        if (!host) throw new Error(`host ${id} is gone`);
        return options.hosts.get(host.uri);
      },
      name: (id: number) => byId.get(id)?.hostname ?? `host ${id}`,
      virtType: (uri: string) => rows.find((r) => r.uri === uri)?.virt_type,
    };
  };

  /** Defines the domain from herd's record, keeping the name the host already knows it by. */
  const defineOn = async (
    db: Database,
    driver: HostDriver,
    vm: VmRow,
    hostVirtType: VirtTypeSetting | undefined,
    knownAs?: DomainInfo | null,
  ) => {
    const parts = await vmParts(db, [vm.id]);
    const existing = knownAs === undefined ? await driver.domain(vm.uuid) : knownAs;
    const spec = buildDomainSpec(
      vm,
      { ...parts, poolLimits: parts.poolLimits.get(vm.id), hostVirtType },
      parts.images[0],
      existing?.name,
      options.pxeBaseUrl,
    );
    await driver.define(spec);
  };

  const run = async (task: TaskRow, ctx: TaskContext): Promise<unknown> => {
    const { db } = ctx;
    const args = task.args as unknown as VmTaskArgs;
    const vm = await vmById(db, task.target_id);
    if (!vm) throw new Error(`VM ${task.target_id} no longer exists`);
    if (vm.task_id !== task.id) throw new Error(`VM ${vm.id} was taken over by task ${vm.task_id} meanwhile`);
    const action = task.action as VmTaskAction;
    const hosts = await drivers(db, [vm.host_id, args.hostId, args.from?.hostId, vm.migration_host_id]);
    const settle = async (patch: Parameters<typeof settleVm>[3]) => {
      if (!(await settleVm(db, vm.id, task.id, patch)))
        ctx.log.info('VM taken over by a later task; its end state is theirs');
    };
    const onHost = async () => {
      if (vm.host_id === null) throw new Error(`VM ${vm.id} is on no host`);
      return hosts.get(vm.host_id);
    };
    const stateOn = async (driver: HostDriver): Promise<VmState> => {
      const info = await driver.domain(vm.uuid);
      if (!info) throw new Error(`domain ${vm.uuid} vanished from ${driver.uri}`);
      return info.state;
    };

    switch (action) {
      case 'start': {
        const target = await onHost();
        const existing = await target.domain(vm.uuid);
        // A crashed domain is kept (on_crash preserve) for inspection: power it off before starting afresh.
        if (existing?.state === 'crashed') await target.destroy(vm.uuid);
        await defineOn(db, target, vm, hosts.virtType(target.uri), existing);
        const moved = await undefineElsewhere(vm, args.from.hostId, vm.host_id!, hosts, ctx);
        await ctx.progress(0.5);
        await target.start(vm.uuid).catch(async (err: Error) => {
          const xml = await target.domainXml(vm.uuid).catch(() => '');
          throw /<domain[^>]*type=['"]kvm['"]/.test(xml)
            ? kvmStartError(err, vm, hosts.virtType(target.uri))
            : err;
        });
        await settle({ state: await stateOn(target), startedAt: 'now' });
        return { hostId: vm.host_id, ...moved };
      }
      case 'shutdown': {
        const driver = await onHost();
        const timeout = args.timeoutSeconds ?? DEFAULT_SHUTDOWN_TIMEOUT_SECONDS;
        await driver.shutdown(vm.uuid);
        const deadline = Date.now() + timeout * 1000;
        let state = await stateOn(driver);
        while (state !== 'shutoff' && Date.now() < deadline) {
          await ctx.progress(1 - (deadline - Date.now()) / (timeout * 1000));
          await new Promise((r) => setTimeout(r, pollMs));
          state = await stateOn(driver);
        }
        if (state === 'shutoff') {
          await settle({ state: 'shutoff', startedAt: null });
          return { forced: false };
        }
        if (!args.force) {
          throw new Error(
            `the guest did not shut down within ${timeout} s and is still ${state}; ask again with force: true to power it off`,
          );
        }
        await driver.destroy(vm.uuid);
        await settle({ state: await stateOn(driver), startedAt: null });
        return { forced: true };
      }
      case 'destroy': {
        const driver = await onHost();
        if ((await stateOn(driver)) !== 'shutoff') await driver.destroy(vm.uuid);
        await settle({ state: await stateOn(driver), startedAt: null });
        return null;
      }
      case 'suspend':
      case 'resume': {
        const driver = await onHost();
        await (action === 'suspend' ? driver.suspend(vm.uuid) : driver.resume(vm.uuid));
        await settle({ state: await stateOn(driver) });
        return null;
      }
      case 'save': {
        const driver = await onHost();
        const file = path.join(saveDir, `herd-${vm.uuid}.save`);
        const problem = saveDirProblem(driver.uri, saveDir);
        if (problem) throw new Error(`cannot save VM ${vm.id}: ${problem}`);
        await withJob(driver, vm.uuid, ctx, driver.save(vm.uuid, file));
        await settle({ state: 'saved', savePath: file, startedAt: null });
        return { savePath: file };
      }
      case 'restore': {
        if (!vm.save_path) throw new Error(`VM ${vm.id} has no saved image`);
        const target = await onHost();
        const moved = args.from.hostId !== vm.host_id;
        if (moved) {
          await defineOn(
            db,
            target,
            vm,
            hosts.virtType(target.uri),
            await domainOn(hosts, args.from.hostId, vm.uuid),
          );
          await undefineElsewhere(vm, args.from.hostId, vm.host_id!, hosts, ctx);
        }
        await ctx.progress(0.3);
        await withJob(target, vm.uuid, ctx, target.restore(vm.save_path), 0.3);
        await settle({ state: await stateOn(target), savePath: null, startedAt: 'now' });
        return { hostId: vm.host_id, savePath: vm.save_path, moved };
      }
      case 'migrate': {
        const source = await onHost();
        const destinationId = args.hostId!;
        const destination = await hosts.get(destinationId);
        if (args.from.state === 'running' || args.from.state === 'paused') {
          await withJob(source, vm.uuid, ctx, source.migrateLive(vm.uuid, destination.uri));
          await settle({ state: await stateOn(destination), hostId: destinationId });
          return { live: true, from: vm.host_id, to: destinationId };
        }
        // Cold: the definition moves, and with it the saved image (on storage both hosts share).
        const known = await source.domain(vm.uuid);
        await defineOn(db, destination, vm, hosts.virtType(destination.uri), known);
        await ctx.progress(0.5);
        if (known) await source.undefine(vm.uuid);
        await settle({ state: args.from.state, hostId: destinationId });
        return { live: false, from: vm.host_id, to: destinationId, savePath: vm.save_path };
      }
      case 'delete': {
        if (vm.host_id !== null) {
          const driver = await hosts.get(vm.host_id);
          if (await driver.domain(vm.uuid)) await driver.undefine(vm.uuid);
        }
        await deleteVmRow(db, vm.id, task.id);
        return null;
      }
      default:
        throw new Error(`unknown VM action ${task.action}`);
    }
  };

  /**
   * Reads where and how the VM really is from the hosts it could be on (its host, the migration destination,
   * where it was before) and settles it there. A host that cannot be asked leaves the VM `unknown` on it.
   */
  const recover = async (task: TaskRow, ctx: TaskContext): Promise<string | undefined> => {
    const { db } = ctx;
    const vm = await vmById(db, task.target_id);
    if (!vm || vm.task_id !== task.id) return undefined;
    const args = task.args as unknown as VmTaskArgs;
    const places = [vm.migration_host_id, vm.host_id, args.hostId, args.from?.hostId].filter(
      (id, i, all): id is number => typeof id === 'number' && all.indexOf(id) === i,
    );
    const hosts = await drivers(db, places);
    const found: Array<{ hostId: number; info: DomainInfo }> = [];
    const unreachable: number[] = [];
    for (const hostId of places) {
      try {
        const info = await (await hosts.get(hostId)).domain(vm.uuid);
        if (info) found.push({ hostId, info });
      } catch (err) {
        ctx.log.warn({ err, hostId }, 'cannot ask the host about the VM');
        unreachable.push(hostId);
      }
    }
    const active = found.find((f) => f.info.state !== 'shutoff') ?? found[0];
    if (active) {
      const { state, savePath } = await stoppedOrSaved(active.info.state, vm, task);
      await settleVm(db, vm.id, task.id, { state, hostId: active.hostId, savePath });
      return `VM state read again from libvirt: ${state} on ${hosts.name(active.hostId)}`;
    }
    if (unreachable.length) {
      await settleVm(db, vm.id, task.id, { state: 'unknown', hostId: unreachable[0] });
      return `VM state unknown: ${unreachable.map((id) => hosts.name(id)).join(', ')} did not answer`;
    }
    await settleVm(db, vm.id, task.id, { state: 'defined', hostId: null, savePath: null });
    return 'VM defined on no host (libvirt knows no such domain)';
  };

  /**
   * A saved VM is shut off as far as libvirt knows; its saved image tells it apart. A save whose worker died
   * may have finished in libvirtd: its image, where the save writes it, is then the VM's.
   */
  const stoppedOrSaved = async (
    state: VmState,
    vm: VmRow,
    task: TaskRow,
  ): Promise<{ state: VmState; savePath: string | null }> => {
    if (state !== 'shutoff') return { state, savePath: null };
    const file = vm.save_path ?? (task.action === 'save' ? path.join(saveDir, `herd-${vm.uuid}.save`) : null);
    if (!file) return { state: 'shutoff', savePath: null };
    const exists = await access(file).then(
      () => true,
      () => false,
    );
    if (exists || vm.save_path) return { state: 'saved', savePath: file };
    return { state: 'shutoff', savePath: null };
  };

  return { run, recover };
}

/**
 * Runs a save, restore or live migration, meanwhile reading libvirt's job info every `everyMs` into the task's
 * progress: the share of the domain's state processed so far, placed between `from` (the progress already
 * shown) and 0.99, with the bytes as the task's `progressDetail`. Never backwards (a migration's total grows as the
 * guest dirties memory again); a failed read is skipped. When a cancel was asked meanwhile (cancelTask), aborts the
 * domain's job once (`DomainAbortJob`): the operation then fails with libvirt's reason, and the worker ends the task
 * cancelled.
 */
async function withJobProgress<T>(
  driver: HostDriver,
  uuid: string,
  ctx: TaskContext,
  op: Promise<T>,
  options: { everyMs: number; from: number },
): Promise<T> {
  const { everyMs, from } = options;
  let done = false;
  let best = from;
  let reading: Promise<void> | undefined;
  let aborted = false;
  const read = async () => {
    if (!aborted && (await ctx.cancelRequested().catch(() => false))) {
      aborted = true;
      ctx.log.info({ uuid }, 'cancel asked: aborting the domain job');
      await driver
        .abortJob(uuid)
        .catch((err) => ctx.log.warn({ err, uuid }, 'aborting the domain job failed'));
      return;
    }
    const job = await driver.jobInfo(uuid).catch(() => null);
    if (!job || done) return;
    const fraction = from + (0.99 - from) * Math.min(1, job.dataProcessedBytes / job.dataTotalBytes);
    if (fraction < best) return;
    best = fraction;
    await ctx
      .progress(fraction, { source: 'libvirt', ...job })
      .catch((err) => ctx.log.debug({ err }, 'could not record progress'));
  };
  const timer = setInterval(() => {
    reading ??= read().finally(() => {
      reading = undefined;
    });
  }, everyMs);
  try {
    return await op;
  } finally {
    done = true;
    clearInterval(timer);
    await reading;
  }
}

async function domainOn(
  hosts: { get(id: number): Promise<HostDriver> },
  hostId: number | null,
  uuid: string,
): Promise<DomainInfo | null> {
  if (hostId === null) return null;
  return (await hosts.get(hostId)).domain(uuid).catch(() => null);
}

/**
 * After a VM was defined on a new host, its definition on the old one goes; an old host that cannot be reached
 * keeps a stale definition, noted in the task's result (the reconciler sees it as not herd's there).
 */
async function undefineElsewhere(
  vm: VmRow,
  oldHostId: number | null,
  newHostId: number,
  hosts: { get(id: number): Promise<HostDriver>; name(id: number): string },
  ctx: TaskContext,
): Promise<{ movedFrom?: number; staleDefinitionOn?: string }> {
  if (oldHostId === null || oldHostId === newHostId) return {};
  try {
    const old = await hosts.get(oldHostId);
    if (await old.domain(vm.uuid)) await old.undefine(vm.uuid);
    return { movedFrom: oldHostId };
  } catch (err) {
    ctx.log.warn({ err, hostId: oldHostId }, 'could not remove the old definition');
    return { movedFrom: oldHostId, staleDefinitionOn: hosts.name(oldHostId) };
  }
}

/**
 * A start that failed on KVM (no /dev/kvm in the guest's namespace, the kvm module gone, nested virtualization
 * refused) names the setting that chose KVM, so the operator knows what to change.
 */
export function kvmStartError(
  err: Error,
  vm: Pick<VmRow, 'id' | 'virt_type'>,
  hostVirtType?: VirtTypeSetting,
) {
  if (!/\bkvm\b/i.test(err.message)) return err;
  const where =
    vm.virt_type === 'kvm'
      ? `the VM's virtType is kvm: set it to qemu (PATCH /api/v1/vms/${vm.id} {"virtType":"qemu"})`
      : `the host's virtType (${hostVirtType ?? 'auto'}) chose KVM: set it to qemu on the host (PATCH /api/v1/hosts/:id {"virtType":"qemu"}) or on the VM (PATCH /api/v1/vms/${vm.id} {"virtType":"qemu"})`;
  return new Error(`${err.message}; ${where} to run it emulated`, { cause: err });
}
