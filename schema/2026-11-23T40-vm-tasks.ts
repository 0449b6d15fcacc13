import { type Kysely, sql } from 'kysely';

// Frozen once released: never edit, add a new migration instead. Imports nothing from the app.

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    -- The pool a task's target belongs to (lists filter by it), the worker running it and its heartbeat (a task
    -- whose heartbeat stops was left by a dead worker), and what it produced.
    ALTER TABLE tasks
      ADD COLUMN pool_id integer REFERENCES pools(id) ON DELETE SET NULL,
      ADD COLUMN worker_id text,
      ADD COLUMN heartbeat_at timestamptz,
      ADD COLUMN result jsonb;
    CREATE INDEX tasks_pool ON tasks(pool_id, id DESC);
    CREATE INDEX tasks_running_heartbeat ON tasks(heartbeat_at) WHERE state = 'running';

    -- A VM migrating holds room on its destination too; the task acting on it; where its saved image is;
    -- the last placement decision, kept to explain it.
    ALTER TABLE vms
      ADD COLUMN migration_host_id integer REFERENCES hosts(id) ON DELETE SET NULL,
      ADD COLUMN task_id integer,
      ADD COLUMN save_path text,
      ADD COLUMN placement jsonb;

    -- What the active VMs on each host hold (placement's "allocated"), kept by triggers on every change of a VM,
    -- whoever makes it. Claiming room on a host locks its row here: claims on one host queue on that lock and each
    -- reads the sum every earlier claim left.
    CREATE TABLE host_allocations (
      host_id integer PRIMARY KEY REFERENCES hosts(id) ON DELETE CASCADE,
      vcpus bigint NOT NULL DEFAULT 0,
      memory_mib bigint NOT NULL DEFAULT 0
    );

    CREATE FUNCTION herd_host_allocation_row() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO host_allocations (host_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
      RETURN NULL;
    END $$;
    CREATE TRIGGER hosts_allocation_row AFTER INSERT ON hosts
      FOR EACH ROW EXECUTE FUNCTION herd_host_allocation_row();

    -- A VM counts on its host, and while migrating on its destination too, when its state is active (the list
    -- is ACTIVE_VM_STATES in api/vms/vm-states.ts; a test checks that they agree). Net changes per host are
    -- applied in host id order, so that concurrent changes never lock two hosts in opposite orders.
    CREATE FUNCTION herd_vm_allocation() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      active CONSTANT text[] := ARRAY['starting', 'running', 'stopping', 'suspending', 'paused', 'resuming',
        'saving', 'restoring', 'migrating', 'unknown'];
      hosts integer[] := '{}';
      vcpus bigint[] := '{}';
      memory bigint[] := '{}';
    BEGIN
      IF TG_OP <> 'INSERT' AND OLD.state = ANY(active) THEN
        hosts := hosts || OLD.host_id; vcpus := vcpus || -OLD.vcpus::bigint; memory := memory || -OLD.memory_mib;
        IF OLD.migration_host_id IS DISTINCT FROM OLD.host_id THEN
          hosts := hosts || OLD.migration_host_id; vcpus := vcpus || -OLD.vcpus::bigint; memory := memory || -OLD.memory_mib;
        END IF;
      END IF;
      IF TG_OP <> 'DELETE' AND NEW.state = ANY(active) THEN
        hosts := hosts || NEW.host_id; vcpus := vcpus || NEW.vcpus::bigint; memory := memory || NEW.memory_mib;
        IF NEW.migration_host_id IS DISTINCT FROM NEW.host_id THEN
          hosts := hosts || NEW.migration_host_id; vcpus := vcpus || NEW.vcpus::bigint; memory := memory || NEW.memory_mib;
        END IF;
      END IF;
      INSERT INTO host_allocations AS a (host_id, vcpus, memory_mib)
      SELECT d.host_id, sum(d.vcpus), sum(d.memory) FROM unnest(hosts, vcpus, memory) AS d(host_id, vcpus, memory)
      WHERE d.host_id IS NOT NULL
      GROUP BY d.host_id HAVING sum(d.vcpus) <> 0 OR sum(d.memory) <> 0
      ORDER BY d.host_id
      ON CONFLICT (host_id) DO UPDATE SET vcpus = a.vcpus + EXCLUDED.vcpus, memory_mib = a.memory_mib + EXCLUDED.memory_mib;
      RETURN NULL;
    END $$;
    CREATE TRIGGER vms_allocation_insert AFTER INSERT ON vms
      FOR EACH ROW WHEN (NEW.host_id IS NOT NULL OR NEW.migration_host_id IS NOT NULL)
      EXECUTE FUNCTION herd_vm_allocation();
    CREATE TRIGGER vms_allocation_update AFTER UPDATE OF state, host_id, migration_host_id, vcpus, memory_mib ON vms
      FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.host_id IS DISTINCT FROM NEW.host_id
        OR OLD.migration_host_id IS DISTINCT FROM NEW.migration_host_id OR OLD.vcpus <> NEW.vcpus
        OR OLD.memory_mib <> NEW.memory_mib)
      EXECUTE FUNCTION herd_vm_allocation();
    CREATE TRIGGER vms_allocation_delete AFTER DELETE ON vms
      FOR EACH ROW WHEN (OLD.host_id IS NOT NULL OR OLD.migration_host_id IS NOT NULL)
      EXECUTE FUNCTION herd_vm_allocation();

    INSERT INTO host_allocations (host_id) SELECT id FROM hosts;
  `.execute(db);
  // What the VMs already on hosts hold.
  await sql`
    UPDATE host_allocations a SET vcpus = s.vcpus, memory_mib = s.memory_mib
    FROM (
      SELECT h AS host_id, sum(v.vcpus) AS vcpus, sum(v.memory_mib) AS memory_mib
      FROM vms v, LATERAL (SELECT v.host_id UNION SELECT v.migration_host_id) x(h)
      WHERE x.h IS NOT NULL AND v.state IN ('starting', 'running', 'stopping', 'suspending', 'paused', 'resuming',
        'saving', 'restoring', 'migrating', 'unknown')
      GROUP BY h
    ) s WHERE a.host_id = s.host_id
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`
    DROP TRIGGER vms_allocation_delete ON vms;
    DROP TRIGGER vms_allocation_update ON vms;
    DROP TRIGGER vms_allocation_insert ON vms;
    DROP FUNCTION herd_vm_allocation();
    DROP TRIGGER hosts_allocation_row ON hosts;
    DROP FUNCTION herd_host_allocation_row();
    DROP TABLE host_allocations;
    ALTER TABLE vms DROP COLUMN placement, DROP COLUMN save_path, DROP COLUMN task_id,
      DROP COLUMN migration_host_id;
    DROP INDEX tasks_running_heartbeat;
    DROP INDEX tasks_pool;
    ALTER TABLE tasks DROP COLUMN result, DROP COLUMN heartbeat_at, DROP COLUMN worker_id, DROP COLUMN pool_id;
  `.execute(db);
}
