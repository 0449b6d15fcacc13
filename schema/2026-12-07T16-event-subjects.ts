import { type Kysely, sql } from 'kysely';

// Frozen once released: never edit, add a new migration instead. Imports nothing from the app.

/**
 * collectd notifications (`events`) are read: each row is tied, as it is inserted, to the host and the VM it is
 * about, so that lists, pages, the live feed and alert rules find them through an index and show them to whoever
 * may see that host or VM.
 *
 * - VM: a guest's UUID in the host part (the virt plugin's `HostnameFormat uuid`, alone or joined with other
 *   fields) or in the plugin instance (`PluginInstanceFormat uuid`), else herd's domain name `herd-<id>-<name>`
 *   there (`HostnameFormat name`, `PluginInstanceFormat name`).
 * - host: the host whose hostname is the host part (or, when no VM matched either, whose short name is the host
 *   part's short name); else, for a VM's notification, the host the VM is on when it arrives.
 *
 * The ids are kept as they were (no foreign key): a notification about a VM or host deleted later stays about
 * it, and is then seen by the super-admin only. The indexes serve those lookups, the time-ordered lists and
 * the retention prune.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    ALTER TABLE events ADD COLUMN host_id integer, ADD COLUMN vm_id integer;

    CREATE FUNCTION herd_event_subject(p_host text, p_plugin_instance text,
      OUT subject_host_id integer, OUT subject_vm_id integer)
    LANGUAGE plpgsql STABLE AS $$
    DECLARE
      candidate text;
      vm_host integer;
    BEGIN
      FOREACH candidate IN ARRAY ARRAY[p_host, p_plugin_instance] LOOP
        SELECT v.id, v.host_id INTO subject_vm_id, vm_host FROM vms v
          WHERE v.uuid = substring(candidate FROM
            '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}')::uuid;
        IF subject_vm_id IS NULL THEN
          SELECT v.id, v.host_id INTO subject_vm_id, vm_host FROM vms v
            WHERE v.id = substring(candidate FROM 'herd-([0-9]{1,9})-')::integer
              AND position('herd-' || v.id || '-' || v.name IN candidate) > 0;
        END IF;
        EXIT WHEN subject_vm_id IS NOT NULL;
      END LOOP;
      SELECT h.id INTO subject_host_id FROM hosts h WHERE h.hostname = p_host ORDER BY h.id LIMIT 1;
      IF subject_host_id IS NULL AND subject_vm_id IS NULL THEN
        SELECT h.id INTO subject_host_id FROM hosts h
          WHERE split_part(h.hostname, '.', 1) = split_part(p_host, '.', 1) ORDER BY h.id LIMIT 1;
      END IF;
      IF subject_host_id IS NULL THEN
        subject_host_id := vm_host;
      END IF;
    END $$;

    CREATE FUNCTION herd_event_resolve() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      SELECT s.subject_host_id, s.subject_vm_id INTO NEW.host_id, NEW.vm_id
        FROM herd_event_subject(NEW.host, NEW.plugin_instance) s;
      RETURN NEW;
    END $$;
    CREATE TRIGGER events_resolve BEFORE INSERT ON events
      FOR EACH ROW WHEN (NEW.host_id IS NULL AND NEW.vm_id IS NULL) EXECUTE FUNCTION herd_event_resolve();

    UPDATE events e SET (host_id, vm_id) =
      (SELECT s.subject_host_id, s.subject_vm_id FROM herd_event_subject(e.host, e.plugin_instance) s);

    CREATE INDEX events_host_id_time ON events(host_id, time DESC);
    CREATE INDEX events_vm_id_time ON events(vm_id, time DESC) WHERE vm_id IS NOT NULL;
    CREATE INDEX events_time ON events(time DESC);
    CREATE INDEX events_received_at ON events(received_at);
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`
    DROP TRIGGER events_resolve ON events;
    DROP FUNCTION herd_event_resolve();
    DROP FUNCTION herd_event_subject(text, text);
    DROP INDEX events_host_id_time, events_vm_id_time, events_time, events_received_at;
    ALTER TABLE events DROP COLUMN host_id, DROP COLUMN vm_id;
  `.execute(db);
}
