import type { Selectable } from 'kysely';
import type { Database } from '../../schema/db.js';
import type { ImagesTable } from '../../schema/index.js';

export type ImageRow = Selectable<ImagesTable>;

export function insertImage(
  db: Database,
  values: Pick<
    ImageRow,
    'name' | 'kernel' | 'initrd' | 'cmdline' | 'ipxe_url' | 'iso_volume_id' | 'created_by'
  >,
): Promise<ImageRow> {
  return db.insertInto('images').values(values).returningAll().executeTakeFirstOrThrow();
}

export function findImage(db: Database, id: number): Promise<ImageRow | undefined> {
  return db.selectFrom('images').selectAll().where('id', '=', id).executeTakeFirst();
}

export function findImageByName(db: Database, name: string): Promise<ImageRow | undefined> {
  return db.selectFrom('images').selectAll().where('name', '=', name).executeTakeFirst();
}

export async function listImages(
  db: Database,
  page: { limit: number; offset: number },
): Promise<{ items: ImageRow[]; total: number }> {
  const [items, count] = await Promise.all([
    db.selectFrom('images').selectAll().orderBy('name').limit(page.limit).offset(page.offset).execute(),
    db
      .selectFrom('images')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow(),
  ]);
  return { items, total: Number(count.n) };
}

export async function deleteImage(db: Database, id: number): Promise<void> {
  await db.deleteFrom('images').where('id', '=', id).execute();
}

export interface BootTarget {
  vm_id: number;
  vm_name: string;
  vm_uuid: string;
  vm_state: string;
  boot_network: boolean;
  image: ImageRow | null;
}

/** The VM owning a NIC with this MAC, and its install image (null when it has none). */
export async function bootTargetByMac(db: Database, mac: string): Promise<BootTarget | undefined> {
  const row = await db
    .selectFrom('vm_nics')
    .innerJoin('vms', 'vms.id', 'vm_nics.vm_id')
    .leftJoin('images', 'images.id', 'vms.image_id')
    .select([
      'vms.id as vm_id',
      'vms.name as vm_name',
      'vms.uuid as vm_uuid',
      'vms.state as vm_state',
      'vms.boot_network',
      'images.id as image_id',
      'images.name as image_name',
      'images.kernel',
      'images.initrd',
      'images.cmdline',
      'images.ipxe_url',
      'images.iso_volume_id',
      'images.created_at as image_created_at',
      'images.created_by',
    ])
    .where('vm_nics.mac', '=', mac)
    .executeTakeFirst();
  if (!row) return undefined;
  return {
    vm_id: row.vm_id,
    vm_name: row.vm_name,
    vm_uuid: row.vm_uuid,
    vm_state: row.vm_state,
    boot_network: row.boot_network,
    image:
      row.image_id === null
        ? null
        : {
            id: row.image_id,
            name: row.image_name!,
            kernel: row.kernel,
            initrd: row.initrd,
            cmdline: row.cmdline,
            ipxe_url: row.ipxe_url,
            iso_volume_id: row.iso_volume_id,
            created_at: row.image_created_at!,
            created_by: row.created_by,
          },
  };
}

/** Installed: the VM boots from its disk from now on. Answers false when there is no such VM. */
export async function setInstalled(db: Database, vmId: number): Promise<boolean> {
  const res = await db
    .updateTable('vms')
    .set({ boot_network: false, install_token: null })
    .where('id', '=', vmId)
    .executeTakeFirst();
  return res.numUpdatedRows > 0n;
}

/** The VM's install token: the one it has, else `candidate`, kept (one statement, so concurrent askers agree). */
export async function installTokenFor(db: Database, vmId: number, candidate: string): Promise<string> {
  const row = await db
    .updateTable('vms')
    .set((eb) => ({ install_token: eb.fn.coalesce('install_token', eb.val(candidate)) }))
    .where('id', '=', vmId)
    .returning('install_token')
    .executeTakeFirstOrThrow();
  return row.install_token ?? candidate;
}

/** The VM still installing whose install token this is. */
export function vmByInstallToken(db: Database, token: string): Promise<{ id: number } | undefined> {
  return db
    .selectFrom('vms')
    .select('id')
    .where('install_token', '=', token)
    .where('boot_network', '=', true)
    .executeTakeFirst();
}
