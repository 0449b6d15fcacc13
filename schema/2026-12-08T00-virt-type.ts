import { type Kysely, sql } from 'kysely';

// Frozen once released: never edit, add a new migration instead. Imports nothing from the app.

/**
 * The virtualization type guests are defined with. Hosts: `auto` (KVM only where libvirt offers it and the CPU
 * shows vmx/svm), `kvm` or `qemu` (TCG emulation), with what herd read of the host's capabilities to decide
 * (the domain types libvirt offers, the host CPU's virtualization features; NULL until read). VMs: an override of
 * their host's setting (NULL: the host's).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    ALTER TABLE hosts
      ADD COLUMN virt_type text NOT NULL DEFAULT 'auto'
        CONSTRAINT hosts_virt_type_values CHECK (virt_type IN ('auto', 'kvm', 'qemu')),
      ADD COLUMN virt_domain_types text[],
      ADD COLUMN cpu_virt_features text[]
  `.execute(db);
  await sql`
    ALTER TABLE vms ADD COLUMN virt_type text
      CONSTRAINT vms_virt_type_values CHECK (virt_type IN ('kvm', 'qemu'))
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE vms DROP COLUMN virt_type`.execute(db);
  await sql`ALTER TABLE hosts DROP COLUMN virt_type, DROP COLUMN virt_domain_types, DROP COLUMN cpu_virt_features`.execute(
    db,
  );
}
