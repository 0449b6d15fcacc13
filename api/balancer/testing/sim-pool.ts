import { expect } from 'vitest';
import type { LiveView } from '../../../ingest/live-view.js';
import { insertVm } from '../../../lib/testing/fleet.js';
import type { Fleet } from '../../vms/testing/vm-fleet.js';

/**
 * A hardware pool of test-driver hosts with running VMs (rows: nothing runs), and synthetic collectd load fed into
 * a live view as ingest would record it: each VM's CPU demand (cores) and memory, each host's CPU busy and memory
 * used the sum of its VMs'. What the balancer's simulation and API tests share.
 */

const MiB = 1024 * 1024;
/** The collectd interval of the synthetic figures, seconds. */
export const SIM_INTERVAL = 60;

export interface SimHost {
  id: number;
  hostname: string;
  cpus: number;
}
export interface SimVm {
  id: number;
  uuid: string;
  name: string;
  memoryMiB: number;
}

export interface SimPool {
  hw: number;
  vmPool: number;
  hosts: SimHost[];
  vms: SimVm[];
}

export async function simPool(
  f: Fleet,
  name: string,
  layout: {
    hosts: number;
    vmsPerHost: number;
    cpus?: number;
    memoryMiB?: number;
    vm?: { vcpus: number; memoryMiB: number };
  },
): Promise<SimPool> {
  const hw = await f.request(f.admin, 'POST', '/api/v1/pools', { name, kind: 'hardware' });
  expect(hw.status, JSON.stringify(hw.body)).toBe(201);
  const vmPool = await f.request(f.admin, 'POST', '/api/v1/pools', {
    name: `${name}-vms`,
    kind: 'vm',
    parentId: hw.body.id,
  });
  expect(vmPool.status, JSON.stringify(vmPool.body)).toBe(201);
  const db = f.t.database.db;
  const cpus = layout.cpus ?? 8;
  const hosts: SimHost[] = [];
  for (let i = 0; i < layout.hosts; i++) {
    const hostname = `${name}-${i}`;
    const { id } = await f.addHost(hw.body.id, {
      name: hostname,
      cpus,
      memoryMiB: layout.memoryMiB ?? 32768,
    });
    hosts.push({ id, hostname, cpus });
  }
  await db
    .updateTable('hosts')
    .set({ state: 'up', enabled: true })
    .where('pool_id', '=', hw.body.id)
    .execute();
  const vms: SimVm[] = [];
  const size = layout.vm ?? { vcpus: 2, memoryMiB: 2048 };
  for (const [h, host] of hosts.entries()) {
    for (let j = 0; j < layout.vmsPerHost; j++) {
      const vmName = `${name}-vm${h}-${j}`;
      const id = await insertVm(db, {
        poolId: vmPool.body.id,
        ownerId: f.admin.id,
        state: 'running',
        hostId: host.id,
        name: vmName,
        ...size,
      });
      const { uuid } = await db
        .selectFrom('vms')
        .select('uuid')
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
      vms.push({ id, uuid, name: vmName, memoryMiB: size.memoryMiB });
    }
  }
  return { hw: hw.body.id, vmPool: vmPool.body.id, hosts, vms };
}

/** Where each VM of the pool is now (its source while it migrates). */
export async function placement(f: Fleet, pool: SimPool): Promise<Map<number, number>> {
  const rows = await f.t.database.db
    .selectFrom('vms')
    .select(['id', 'host_id'])
    .where('pool_id', '=', pool.vmPool)
    .execute();
  return new Map(rows.map((r) => [r.id, r.host_id!]));
}

/**
 * Feeds one interval of figures at `at` (ms): each VM's CPU counter advanced by `cores(vm)` CPUs over the interval
 * (collectd's virt plugin, virt_cpu_total in ns) and its memory; each host's CPU busy % (cpu plugin, percent) and
 * memory used, from the VMs on it now. Answers the hosts' CPU busy %.
 */
export class LoadFeeder {
  private readonly counters = new Map<number, number>();
  constructor(
    private readonly live: LiveView,
    private readonly f: Fleet,
  ) {}

  async feed(pool: SimPool, at: number, cores: (vm: SimVm) => number): Promise<Map<number, number>> {
    const on = await placement(this.f, pool);
    const time = at / 1000;
    const base = { time, interval: SIM_INTERVAL, pluginInstance: '', typeInstance: '' };
    const hostCores = new Map<number, number>();
    const hostMemory = new Map<number, number>();
    for (const vm of pool.vms) {
      const c = cores(vm);
      const counter = (this.counters.get(vm.id) ?? 0) + c * 1e9 * SIM_INTERVAL;
      this.counters.set(vm.id, counter);
      const guest = { ...base, host: vm.uuid, plugin: 'virt' };
      this.live.update(
        { ...guest, type: 'virt_cpu_total', dsTypes: ['derive'], values: [counter] },
        ['value'],
        at,
      );
      this.live.update(
        { ...guest, type: 'memory', typeInstance: 'rss', dsTypes: ['gauge'], values: [vm.memoryMiB * MiB] },
        ['value'],
        at,
      );
      const h = on.get(vm.id)!;
      hostCores.set(h, (hostCores.get(h) ?? 0) + c);
      hostMemory.set(h, (hostMemory.get(h) ?? 0) + vm.memoryMiB);
    }
    const busy = new Map<number, number>();
    for (const host of pool.hosts) {
      const pct = Math.min(100, 2 + ((hostCores.get(host.id) ?? 0) / host.cpus) * 100);
      busy.set(host.id, pct);
      const cpu = {
        ...base,
        host: host.hostname,
        plugin: 'cpu',
        type: 'percent',
        dsTypes: ['gauge' as const],
      };
      this.live.update({ ...cpu, typeInstance: 'user', values: [pct] }, ['value'], at);
      this.live.update({ ...cpu, typeInstance: 'idle', values: [100 - pct] }, ['value'], at);
      const used = 1024 + (hostMemory.get(host.id) ?? 0);
      this.live.update(
        {
          ...base,
          host: host.hostname,
          plugin: 'memory',
          type: 'memory',
          typeInstance: 'used',
          dsTypes: ['gauge'],
          values: [used * MiB],
        },
        ['value'],
        at,
      );
    }
    return busy;
  }
}

/**
 * What the task worker does once a live migration succeeds, done directly (nothing runs on test-driver hosts):
 * the VM on its destination, the task done at `at`.
 */
export async function completeMigrations(f: Fleet, taskIds: readonly number[], at: number): Promise<void> {
  const db = f.t.database.db;
  for (const id of taskIds) {
    const task = await db
      .selectFrom('tasks')
      .select(['target_id', 'state'])
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    if (task.state !== 'queued' && task.state !== 'running') continue;
    const vm = await db
      .selectFrom('vms')
      .select(['migration_host_id'])
      .where('id', '=', task.target_id)
      .executeTakeFirstOrThrow();
    await db
      .updateTable('vms')
      .set({ host_id: vm.migration_host_id, migration_host_id: null, state: 'running', task_id: null })
      .where('id', '=', task.target_id)
      .execute();
    await db
      .updateTable('tasks')
      .set({ state: 'done', progress: 1, started_at: new Date(at - 10_000), finished_at: new Date(at) })
      .where('id', '=', id)
      .execute();
  }
}
