import { randomUUID } from 'node:crypto';
import type { Database } from '../../schema/db.js';

/** Rows inserted directly for tests of quotas and access: hosts, VMs with NICs and volumes. */
export async function insertHost(
  db: Database,
  options: { poolId: number; cpus: number; memoryMiB: number; hostname?: string },
): Promise<number> {
  const hostname = options.hostname ?? `host-${randomUUID().slice(0, 8)}`;
  const { id } = await db
    .insertInto('hosts')
    .values({
      pool_id: options.poolId,
      uri: `test:///${hostname}`,
      hostname,
      cpus: options.cpus,
      memory_mib: options.memoryMiB,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return id;
}

let storagePoolId: number | undefined;
let storageDb: Database | undefined;

/** A VM row (on `hostId`, if given) with `nics` NICs and one volume per entry of `volumesGiB`. */
export async function insertVm(
  db: Database,
  options: {
    poolId: number;
    ownerId: number;
    state?: string;
    hostId?: number;
    vcpus?: number;
    memoryMiB?: number;
    nics?: number;
    volumesGiB?: number[];
    name?: string;
  },
): Promise<number> {
  const { id } = await db
    .insertInto('vms')
    .values({
      uuid: randomUUID(),
      name: options.name ?? `vm-${randomUUID().slice(0, 8)}`,
      pool_id: options.poolId,
      owner_id: options.ownerId,
      state: options.state ?? 'shutoff',
      host_id: options.hostId ?? null,
      vcpus: options.vcpus ?? 1,
      memory_mib: options.memoryMiB ?? 512,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  for (let i = 0; i < (options.nics ?? 0); i++) {
    const mac = `52:54:00:${[id >> 8, id & 0xff, i].map((b) => (b & 0xff).toString(16).padStart(2, '0')).join(':')}`;
    await db.insertInto('vm_nics').values({ vm_id: id, mac }).execute();
  }
  if (options.volumesGiB?.length) {
    if (storageDb !== db || storagePoolId === undefined) {
      storageDb = db;
      storagePoolId = (
        await db
          .insertInto('storage_pools')
          .values({ pool_id: 1, type: 'nfs', name: `test-${randomUUID().slice(0, 8)}` })
          .returning('id')
          .executeTakeFirstOrThrow()
      ).id;
    }
    for (const size of options.volumesGiB) {
      await db
        .insertInto('volumes')
        .values({ storage_pool_id: storagePoolId, name: `vol-${randomUUID()}`, size_gib: size, vm_id: id })
        .execute();
    }
  }
  return id;
}
