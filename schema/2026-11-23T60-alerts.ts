import { type Kysely, sql } from 'kysely';

// Frozen once released: never edit, add a new migration instead. Imports nothing from the app.

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    -- Where notifications go. pool_id NULL: a global channel (super-admin), else the alerts of that pool's
    -- subtree. secret: the webhook's HMAC key, or the SMTP password of an e-mail channel; never shown.
    CREATE TABLE notification_channels (
      id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      name text NOT NULL,
      type text NOT NULL CHECK (type IN ('webhook', 'email')),
      pool_id integer REFERENCES pools(id) ON DELETE CASCADE,
      config jsonb NOT NULL DEFAULT '{}',
      secret text,
      min_severity text NOT NULL DEFAULT 'info' CHECK (min_severity IN ('info', 'warning', 'critical')),
      send_resolved boolean NOT NULL DEFAULT true,
      enabled boolean NOT NULL DEFAULT true,
      created_by integer REFERENCES users(id) ON DELETE SET NULL,
      created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX notification_channels_pool ON notification_channels(pool_id);

    -- builtin: the key of a rule herd ships (seeded at start, never deleted, may be edited or disabled).
    -- scope global: every host (or quota); pool: each host of the pool's subtree, or one value for the pool
    -- when aggregate is set; host: one host. channel_ids NULL: every channel covering the alert's pool.
    CREATE TABLE alert_rules (
      id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      builtin text UNIQUE,
      name text NOT NULL,
      description text NOT NULL DEFAULT '',
      enabled boolean NOT NULL DEFAULT true,
      scope text NOT NULL CHECK (scope IN ('global', 'pool', 'host')),
      pool_id integer REFERENCES pools(id) ON DELETE CASCADE,
      host_id integer REFERENCES hosts(id) ON DELETE CASCADE,
      aggregate text CHECK (aggregate IN ('mean', 'max', 'min', 'sum')),
      metric jsonb NOT NULL,
      condition text NOT NULL CHECK (condition IN ('above', 'below', 'absent')),
      threshold double precision,
      window_seconds integer NOT NULL DEFAULT 0 CHECK (window_seconds >= 0),
      window_function text NOT NULL DEFAULT 'last' CHECK (window_function IN ('last', 'mean', 'max', 'min')),
      pending_seconds integer NOT NULL DEFAULT 0 CHECK (pending_seconds >= 0),
      keep_firing_seconds integer NOT NULL DEFAULT 0 CHECK (keep_firing_seconds >= 0),
      nodata_policy text NOT NULL DEFAULT 'nodata' CHECK (nodata_policy IN ('nodata', 'ok', 'alerting', 'keep')),
      error_policy text NOT NULL DEFAULT 'error' CHECK (error_policy IN ('error', 'ok', 'alerting', 'keep')),
      severity text NOT NULL DEFAULT 'warning' CHECK (severity IN ('info', 'warning', 'critical')),
      labels jsonb NOT NULL DEFAULT '{}',
      group_wait_seconds integer NOT NULL DEFAULT 30 CHECK (group_wait_seconds >= 0),
      repeat_interval_seconds integer NOT NULL DEFAULT 14400 CHECK (repeat_interval_seconds > 0),
      channel_ids integer[],
      created_by integer REFERENCES users(id) ON DELETE SET NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      CHECK (
        (scope = 'global' AND pool_id IS NULL AND host_id IS NULL) OR
        (scope = 'pool' AND pool_id IS NOT NULL AND host_id IS NULL) OR
        (scope = 'host' AND host_id IS NOT NULL AND pool_id IS NULL AND aggregate IS NULL)
      ),
      CHECK (condition = 'absent' OR threshold IS NOT NULL)
    );
    CREATE INDEX alert_rules_pool ON alert_rules(pool_id);
    CREATE INDEX alert_rules_host ON alert_rules(host_id);

    -- The state of one rule for one subject ('host:3', 'pool:2', 'quota:2:user:5:memoryMiB'), kept here so it
    -- survives a restart and is shared by every herd process. version is bumped by every write and every
    -- update is conditional on it, so two evaluators can never both make the same transition.
    CREATE TABLE alert_instances (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      rule_id integer NOT NULL REFERENCES alert_rules(id) ON DELETE CASCADE,
      subject text NOT NULL,
      pool_id integer REFERENCES pools(id) ON DELETE SET NULL,
      host_id integer REFERENCES hosts(id) ON DELETE SET NULL,
      labels jsonb NOT NULL DEFAULT '{}',
      state text NOT NULL CHECK (state IN ('ok', 'pending', 'firing', 'nodata', 'error')),
      version integer NOT NULL DEFAULT 0,
      value double precision,
      error text,
      active_since timestamptz,
      firing_since timestamptz,
      last_breach_at timestamptz,
      resolved_at timestamptz,
      last_notified_at timestamptz,
      last_evaluated_at timestamptz,
      state_changed_at timestamptz NOT NULL,
      UNIQUE (rule_id, subject)
    );
    CREATE INDEX alert_instances_active ON alert_instances(state) WHERE state <> 'ok';
    CREATE INDEX alert_instances_pool ON alert_instances(pool_id, state_changed_at DESC);
    CREATE INDEX alert_instances_host ON alert_instances(host_id);

    -- matchers: [{name, value, op: '=' | '!=' | '=~' | '!~'}] over an alert's labels, all must hold.
    -- pool_id NULL: global (super-admin); else only alerts of that pool's subtree.
    CREATE TABLE silences (
      id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      pool_id integer REFERENCES pools(id) ON DELETE CASCADE,
      matchers jsonb NOT NULL,
      starts_at timestamptz NOT NULL,
      ends_at timestamptz NOT NULL,
      comment text NOT NULL,
      created_by integer REFERENCES users(id) ON DELETE SET NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      CHECK (ends_at > starts_at)
    );
    CREATE INDEX silences_ends ON silences(ends_at);

    -- One notification per channel and group (rule × pool) and delivery history in one: alerts collect into the
    -- open ('grouping') row of their group until not_before, then one process claims it (SKIP LOCKED) and
    -- sends it; payload is what was sent, the same bytes on every retry; history has one entry per attempt.
    CREATE TABLE notifications (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      channel_id integer NOT NULL REFERENCES notification_channels(id) ON DELETE CASCADE,
      rule_id integer REFERENCES alert_rules(id) ON DELETE SET NULL,
      pool_id integer REFERENCES pools(id) ON DELETE SET NULL,
      group_key text NOT NULL,
      status text NOT NULL CHECK (status IN ('grouping', 'sending', 'retrying', 'delivered', 'failed', 'silenced')),
      alerts jsonb NOT NULL DEFAULT '[]',
      payload jsonb,
      created_at timestamptz NOT NULL,
      not_before timestamptz NOT NULL,
      locked_until timestamptz,
      attempts integer NOT NULL DEFAULT 0,
      last_error text,
      delivered_at timestamptz,
      history jsonb NOT NULL DEFAULT '[]'
    );
    CREATE UNIQUE INDEX notifications_open_group ON notifications(channel_id, group_key) WHERE status = 'grouping';
    CREATE INDEX notifications_due ON notifications(not_before) WHERE status IN ('grouping', 'sending', 'retrying');
    CREATE INDEX notifications_rule ON notifications(rule_id, id DESC);
    CREATE INDEX notifications_pool ON notifications(pool_id, id DESC);

    -- A quota (pool total: user_id NULL) found exceeded, while it is: action 'none' during the grace period,
    -- then what the pool's policy did. blocked: starts, resumes and restores under this quota are refused.
    CREATE TABLE quota_enforcement (
      pool_id integer NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
      user_id integer REFERENCES users(id) ON DELETE CASCADE,
      over jsonb NOT NULL,
      over_since timestamptz NOT NULL,
      policy text NOT NULL CHECK (policy IN ('alert', 'block', 'suspend-newest')),
      action text NOT NULL DEFAULT 'none' CHECK (action IN ('none', 'alert', 'block', 'suspend')),
      blocked boolean NOT NULL DEFAULT false,
      reason text NOT NULL,
      checked_at timestamptz NOT NULL,
      UNIQUE NULLS NOT DISTINCT (pool_id, user_id)
    );
    CREATE INDEX quota_enforcement_blocked ON quota_enforcement(pool_id) WHERE blocked;

    -- Every enforcement decision, for the pool page ("what was done and why").
    CREATE TABLE quota_enforcement_log (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      at timestamptz NOT NULL,
      pool_id integer NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
      user_id integer REFERENCES users(id) ON DELETE SET NULL,
      action text NOT NULL CHECK (action IN ('over', 'alert', 'block', 'unblock', 'suspend', 'resolved', 'skipped')),
      vm_id integer REFERENCES vms(id) ON DELETE SET NULL,
      task_id integer,
      reason text NOT NULL,
      details jsonb NOT NULL DEFAULT '{}'
    );
    CREATE INDEX quota_enforcement_log_pool ON quota_enforcement_log(pool_id, at DESC);
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`
    DROP TABLE quota_enforcement_log, quota_enforcement, notifications, silences, alert_instances, alert_rules,
      notification_channels;
  `.execute(db);
}
