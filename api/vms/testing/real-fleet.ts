import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { createLogger } from '../../../lib/log.js';
import {
  type GuestSignals,
  guestCmdline,
  type SharedHypervisor,
  sharedHypervisor,
  startGuestSignals,
} from '../../../lib/testing/hypervisor.js';
import { createPool, createUserWithToken, grantRole } from '../../../lib/testing/users.js';
import { HostMonitor } from '../../hosts/host-monitor.js';
import type { RunningWorker } from '../../tasks/worker.js';
import { createVmTaskHandler } from '../vm-task-handler.js';
import { createFleet, type Fleet, type User } from './vm-fleet.js';

const run = promisify(execFile);

/**
 * herd's API, task worker and host monitor (following domain events) on a database of its own, with the
 * suite's two real libvirtds as hosts of one hardware pool: what the tests on a real hypervisor share. Every VM
 * made through `createVm` is destroyed and undefined on both hosts at `close`, whatever the test left.
 */
export interface RealFleet {
  f: Fleet;
  hv: SharedHypervisor;
  signals: GuestSignals;
  owner: User;
  rack: number;
  team: number;
  hosts: Array<{ id: number; uri: string }>;
  /** The in-process task worker and host monitor; absent with `inProcess: false` (workers run elsewhere). */
  worker?: RunningWorker;
  monitor?: HostMonitor;
  saveDir: string;
  /** virsh on host `index` (0 or 1), as an operator outside herd would run it. */
  virsh(index: number, ...args: string[]): Promise<string>;
  /** A VM booting the suite's guest; `topic` prefixes its name (names are unique across the suite). */
  createVm(topic: string, options?: { script?: string; volumes?: number[] }): Promise<RealVm>;
  act(vmId: number, body: Record<string, unknown>, timeoutMs?: number): Promise<any>;
  vm(vmId: number): Promise<any>;
  close(): Promise<void>;
}

export interface RealVm {
  id: number;
  uuid: string;
  name: string;
  /** The URL its guest GETs once up (`signals.waitFor(readyName)`). */
  readyName: string;
}

export async function createRealFleet(
  options: { heartbeatSeconds?: number; inProcess?: boolean } = {},
): Promise<RealFleet> {
  const hv = sharedHypervisor();
  const f = await createFleet();
  const db = f.t.database.db;
  const log = createLogger(process.env.HERD_TEST_LOG_LEVEL ?? 'silent');
  const signals = await startGuestSignals();
  const owner = await createUserWithToken(db, { username: 'owner' });
  const rack = await createPool(db, { name: 'rack' });
  const team = await createPool(db, { name: 'team', kind: 'vm', parentId: rack });
  await grantRole(db, team, owner.id, 'user');
  const hosts: RealFleet['hosts'] = [];
  for (const h of hv.hosts) {
    const res = await f.request(f.admin, 'POST', '/api/v1/hosts', { uri: h.uri, poolId: rack });
    if (res.status !== 201) throw new Error(`adding ${h.uri}: ${res.status} ${JSON.stringify(res.body)}`);
    hosts.push({ id: res.body.id, uri: h.uri });
  }
  const saveDir = path.join(hv.sharedDir, `save-${randomUUID().slice(0, 8)}`);
  await mkdir(saveDir, { recursive: true });
  const inProcess = options.inProcess ?? true;
  const worker = inProcess
    ? await f.worker({
        handlers: { vm: createVmTaskHandler({ hosts: f.connections, saveDir, shutdownPollMs: 100 }) },
      })
    : undefined;
  const monitor = inProcess
    ? new HostMonitor({
        db,
        connections: f.connections,
        log,
        events: f.t.deps.events,
        intervalSeconds: options.heartbeatSeconds ?? 3600,
        domainEvents: true,
      })
    : undefined;
  monitor?.start();
  const made: RealVm[] = [];
  const virsh = async (index: number, ...args: string[]) =>
    (await run('virsh', ['-q', '-c', hv.hosts[index].uri, ...args], { timeout: 120_000 })).stdout;

  const fleet: RealFleet = {
    f,
    hv,
    signals,
    owner,
    rack,
    team,
    hosts,
    worker,
    monitor,
    saveDir,
    virsh,
    async createVm(topic, vmOptions = {}) {
      const name = `${topic}-${randomUUID().slice(0, 6)}`;
      const readyName = `ready/${name}`;
      const res = await f.request(f.admin, 'POST', '/api/v1/vms', {
        name,
        poolId: team,
        vcpus: 1,
        memoryMiB: 128,
        nics: [{ network: 'user' }],
        ...(vmOptions.volumes ? { volumes: vmOptions.volumes } : {}),
        linuxBoot: {
          kernel: hv.image.kernel,
          initrd: hv.image.initrd,
          cmdline: guestCmdline({ ready: signals.url(readyName), script: vmOptions.script }),
        },
      });
      if (res.status !== 201) throw new Error(`creating ${name}: ${res.status} ${JSON.stringify(res.body)}`);
      const vm = (await f.request(f.admin, 'GET', `/api/v1/vms/${res.body.id}`)).body;
      const made1 = { id: vm.id, uuid: vm.uuid, name, readyName };
      made.push(made1);
      return made1;
    },
    async act(vmId, body, timeoutMs = 120_000) {
      const res = await f.request(f.admin, 'POST', `/api/v1/vms/${vmId}/actions`, body);
      if (res.status !== 202) throw new Error(`${body.action}: ${res.status} ${JSON.stringify(res.body)}`);
      return f.waitTask(res.body.taskId, f.admin, timeoutMs);
    },
    async vm(vmId) {
      return (await f.request(f.admin, 'GET', `/api/v1/vms/${vmId}`)).body;
    },
    async close() {
      await monitor?.stop();
      for (const vm of made) {
        for (const index of hv.hosts.keys()) {
          await virsh(index, 'destroy', vm.uuid).catch(() => undefined);
          await virsh(index, 'undefine', vm.uuid).catch(() => undefined);
        }
      }
      await signals.close();
      await f.close();
    },
  };
  return fleet;
}
