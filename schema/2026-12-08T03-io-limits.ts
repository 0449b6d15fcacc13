import { type Kysely, sql } from 'kysely';

// Frozen once released: never edit, add a new migration instead. Imports nothing from the app.

/**
 * Network bandwidth and disk I/O limits, like the CPU limits of 2026-12-07T23: a VM's own, and a VM pool's
 * ceiling for its VMs (a VM's effective limit is the lower of the two). Null: no limit. NICs (libvirt
 * `<bandwidth>`): average and peak in KiB/s, burst in KiB, inbound and outbound as the guest sees them; disks
 * (libvirt `<iotune>`): read and write bytes/s and operations/s.
 */
const COLUMNS: Array<[name: string, type: string, max: string]> = [
  ['net_inbound_kibps', 'integer', '2147483647'],
  ['net_inbound_peak_kibps', 'integer', '2147483647'],
  ['net_inbound_burst_kib', 'integer', '2147483647'],
  ['net_outbound_kibps', 'integer', '2147483647'],
  ['net_outbound_peak_kibps', 'integer', '2147483647'],
  ['net_outbound_burst_kib', 'integer', '2147483647'],
  ['disk_read_bytes_sec', 'bigint', '1000000000000000'],
  ['disk_write_bytes_sec', 'bigint', '1000000000000000'],
  ['disk_read_iops', 'integer', '2147483647'],
  ['disk_write_iops', 'integer', '2147483647'],
];

export async function up(db: Kysely<any>): Promise<void> {
  for (const table of ['vms', 'pools']) {
    for (const [name, type, max] of COLUMNS) {
      await sql`
        ALTER TABLE ${sql.table(table)} ADD COLUMN ${sql.ref(name)} ${sql.raw(type)}
          CONSTRAINT ${sql.ref(`${table}_${name}_range`)} CHECK (${sql.ref(name)} BETWEEN 1 AND ${sql.raw(max)})
      `.execute(db);
    }
  }
  await sql`
    ALTER TABLE pools ADD CONSTRAINT pools_io_limits_vm_pools CHECK (kind = 'vm' OR num_nonnulls(${sql.join(
      COLUMNS.map(([name]) => sql.ref(name)),
    )}) = 0)
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE pools DROP CONSTRAINT pools_io_limits_vm_pools`.execute(db);
  for (const table of ['pools', 'vms']) {
    for (const [name] of COLUMNS) {
      await sql`ALTER TABLE ${sql.table(table)} DROP COLUMN ${sql.ref(name)}`.execute(db);
    }
  }
}
