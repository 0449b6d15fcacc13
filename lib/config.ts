import { accessSync, constants as fsConstants } from 'node:fs';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { isMultiHostUrl, PgUrlError, parsePgUrl } from './pg-url.js';

/** Defaults, named once. docs/configuration.md lists each with its variable. */
export const DEFAULTS = {
  dataDir: './data',
  /** Where hosts write saved VM images (a path on each host, as libvirtd sees it). */
  saveDir: '/var/lib/libvirt/qemu/save',
  influxDb: 'collectd',
  httpHost: '127.0.0.1',
  httpPort: 8080,
  collectdHost: '0.0.0.0',
  collectdPort: 25826,
  collectdRcvbuf: 16 * 1024 * 1024,
  logLevel: 'info',
  heartbeatSeconds: 10,
  /** A running task whose worker has shown no sign of life this long is taken over (api/tasks/worker.ts). */
  taskLeaseSeconds: 30,
  alertEvaluateSeconds: 10,
  quotaReconcileSeconds: 15,
  /** The balancer's cycle (api/balancer/balancer-loop.ts): a sample of every host and a plan of every pool on. */
  balancerSeconds: 60,
  smtpFrom: 'herd@localhost',
  influxBatchSize: 5000,
  influxFlushMs: 1000,
  influxMemoryPoints: 500_000,
  spillMaxBytes: 1024 * 1024 * 1024,
  rawRetentionHours: 48,
  rollupStepSeconds: 300,
  rollupRetentionDays: 365,
  ldapUserFilter: '(uid={username})',
  ldapUsernameAttribute: 'uid',
  /** The service part of herd's Kerberos principal; the host part defaults to this machine's name. */
  kerberosService: 'HTTP',
  /** How long a process ranks hosts from the allocations it read before reading them again (0: every decision). */
  placementCacheMs: 200,
  /** How often an ingest process publishes the changed host summaries of its live view to PostgreSQL. */
  livePublishMs: 2_000,
} as const;

const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === '' ? undefined : v));

/** A URL as before, or a libpq multi-host URL (lib/pg-url.ts) that parses; its error never shows the password. */
function checkDatabaseUrl(url: string, ctx: z.RefinementCtx): void {
  if (!isMultiHostUrl(url)) {
    if (!z.string().url().safeParse(url).success) ctx.addIssue({ code: 'custom', message: 'Invalid URL' });
    return;
  }
  try {
    parsePgUrl(url);
  } catch (err) {
    if (!(err instanceof PgUrlError)) throw err;
    ctx.addIssue({ code: 'custom', message: err.message });
  }
}

const envSchema = z.object({
  HERD_DATA_DIR: z.string().min(1).default(DEFAULTS.dataDir),
  DATABASE_URL: optionalString.pipe(z.string().superRefine(checkDatabaseUrl).optional()),
  INFLUX_URL: optionalString.pipe(z.string().url().optional()),
  INFLUX_DB: z.string().min(1).default(DEFAULTS.influxDb),
  INFLUX_USERNAME: optionalString,
  INFLUX_PASSWORD: optionalString,
  HERD_HTTP_HOST: z.string().min(1).default(DEFAULTS.httpHost),
  HERD_HTTP_PORT: port.default(DEFAULTS.httpPort),
  HERD_COLLECTD_HOST: z.string().min(1).default(DEFAULTS.collectdHost),
  HERD_COLLECTD_PORT: port.default(DEFAULTS.collectdPort),
  HERD_COLLECTD_SECURITY_LEVEL: z.enum(['none', 'sign', 'encrypt']).default('none'),
  HERD_COLLECTD_AUTH_FILE: optionalString,
  HERD_COLLECTD_TYPES_DB: optionalString,
  HERD_COLLECTD_RCVBUF: positiveInt.default(DEFAULTS.collectdRcvbuf),
  HERD_COLLECTD_MULTIVALUE: z.enum(['split', 'join']).default('split'),
  HERD_INFLUX_BATCH_SIZE: positiveInt.default(DEFAULTS.influxBatchSize),
  HERD_INFLUX_FLUSH_MS: positiveInt.default(DEFAULTS.influxFlushMs),
  HERD_INFLUX_MEMORY_POINTS: positiveInt.default(DEFAULTS.influxMemoryPoints),
  HERD_SPILL_MAX_BYTES: positiveInt.default(DEFAULTS.spillMaxBytes),
  HERD_RAW_RETENTION_HOURS: z.coerce.number().int().min(0).default(DEFAULTS.rawRetentionHours),
  HERD_ROLLUP_STEP_SECONDS: z.coerce.number().int().min(10).max(86_400).default(DEFAULTS.rollupStepSeconds),
  HERD_ROLLUP_RETENTION_DAYS: positiveInt.default(DEFAULTS.rollupRetentionDays),
  HERD_ADMIN_PASSWORD: optionalString,
  HERD_HEARTBEAT_SECONDS: positiveInt.default(DEFAULTS.heartbeatSeconds),
  HERD_TASK_LEASE_SECONDS: z.coerce.number().int().min(2).max(3600).default(DEFAULTS.taskLeaseSeconds),
  HERD_PLACEMENT_CACHE_MS: z.coerce.number().int().min(0).max(60_000).default(DEFAULTS.placementCacheMs),
  HERD_LIVE_PUBLISH_MS: z.coerce.number().int().min(100).max(60_000).default(DEFAULTS.livePublishMs),
  HERD_SAVE_DIR: z.string().min(1).default(DEFAULTS.saveDir),
  HERD_LIBVIRT_TLS_CERT: optionalString,
  HERD_LIBVIRT_TLS_KEY: optionalString,
  HERD_LIBVIRT_TLS_CA: optionalString,
  HERD_PXE_BASE_URL: optionalString.pipe(
    z
      .string()
      .regex(
        /^https?:\/\/[^\s/?#,]+(\/[^\s?#,]*)?$/,
        'http(s)://host[:port][/path], no query, spaces or commas',
      )
      .optional(),
  ),
  HERD_MDNS: z.enum(['0', '1', 'true', 'false', '']).default('0'),
  HERD_ALERT_EVALUATE_SECONDS: positiveInt.default(DEFAULTS.alertEvaluateSeconds),
  HERD_QUOTA_RECONCILE_SECONDS: positiveInt.default(DEFAULTS.quotaReconcileSeconds),
  HERD_BALANCER_SECONDS: positiveInt.default(DEFAULTS.balancerSeconds),
  HERD_SMTP_URL: optionalString.pipe(
    z
      .string()
      .regex(/^smtps?:\/\/.+/, 'smtp://[user:pass@]host[:port] or smtps://…')
      .optional(),
  ),
  HERD_SMTP_FROM: z.string().min(3).default(DEFAULTS.smtpFrom),
  HERD_WEBHOOK_ALLOW: z
    .string()
    .default('')
    .transform((v) =>
      v
        .split(',')
        .map((e) => e.trim())
        .filter(Boolean),
    )
    .refine(
      (list) => list.every((e) => /^[0-9a-fA-F:.]+(\/\d{1,3})?$/.test(e) && isIP(e.split('/')[0]) !== 0),
      {
        message: 'comma-separated addresses or CIDRs (127.0.0.1, 10.0.0.0/8, ::1)',
      },
    ),
  HERD_LDAP_URL: optionalString.pipe(
    z
      .string()
      .regex(/^ldaps?:\/\/[^/]+\/?$/, 'ldap://host:port or ldaps://host:port')
      .optional(),
  ),
  HERD_LDAP_BASE_DN: optionalString,
  HERD_LDAP_BIND_DN: optionalString,
  HERD_LDAP_BIND_PASSWORD: optionalString,
  HERD_LDAP_USER_FILTER: z.string().includes('{username}').default(DEFAULTS.ldapUserFilter),
  HERD_LDAP_USERNAME_ATTRIBUTE: z.string().min(1).default(DEFAULTS.ldapUsernameAttribute),
  HERD_LDAP_GROUP_ROLES: optionalString.pipe(
    z
      .string()
      .regex(
        /^\s*[^;]+=(admin|user|monitor)@\d+\s*(;\s*[^;]+=(admin|user|monitor)@\d+\s*)*;?\s*$/,
        '<group DN>=<role>@<pool id>;…',
      )
      .optional(),
  ),
  HERD_KERBEROS_KEYTAB: optionalString,
  HERD_KERBEROS_PRINCIPAL: optionalString.pipe(
    z
      .string()
      .regex(
        /^[A-Za-z0-9._-]+@[A-Za-z0-9._-]+$/,
        'a GSS host-based service name: <service>@<host>, e.g. HTTP@herd.example.com',
      )
      .optional(),
  ),
  HERD_KERBEROS_REALMS: optionalString.pipe(
    z
      .string()
      .regex(
        /^\s*[A-Za-z0-9._-]+\s*(,\s*[A-Za-z0-9._-]+\s*)*$/,
        'comma-separated realms (EXAMPLE.COM,OTHER.ORG)',
      )
      .optional(),
  ),
  HERD_LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default(DEFAULTS.logLevel),
});

export type Config = ReturnType<typeof toConfig>;

function toConfig(env: z.infer<typeof envSchema>) {
  return {
    dataDir: path.resolve(env.HERD_DATA_DIR),
    databaseUrl: env.DATABASE_URL,
    influx: env.INFLUX_URL
      ? {
          url: env.INFLUX_URL.replace(/\/+$/, ''),
          db: env.INFLUX_DB,
          username: env.INFLUX_USERNAME,
          password: env.INFLUX_PASSWORD,
        }
      : undefined,
    influxDb: env.INFLUX_DB,
    http: { host: env.HERD_HTTP_HOST, port: env.HERD_HTTP_PORT },
    collectd: {
      host: env.HERD_COLLECTD_HOST,
      port: env.HERD_COLLECTD_PORT,
      securityLevel: env.HERD_COLLECTD_SECURITY_LEVEL,
      authFile: env.HERD_COLLECTD_AUTH_FILE,
      typesDb: env.HERD_COLLECTD_TYPES_DB
        ? env.HERD_COLLECTD_TYPES_DB.split(path.delimiter).filter(Boolean)
        : [],
      rcvbuf: env.HERD_COLLECTD_RCVBUF,
      multiValue: env.HERD_COLLECTD_MULTIVALUE,
    },
    writer: {
      batchSize: env.HERD_INFLUX_BATCH_SIZE,
      flushMs: env.HERD_INFLUX_FLUSH_MS,
      memoryPoints: env.HERD_INFLUX_MEMORY_POINTS,
      spillMaxBytes: env.HERD_SPILL_MAX_BYTES,
    },
    /** Raw points kept this long in PostgreSQL (InfluxDB keeps its own retention policies). */
    /**
     * Downsampled metrics for long graphs: mean and max per `stepSeconds` bucket, kept `retentionDays`.
     * Graphs longer than `rawRetentionHours` (or reaching further back) read them; on InfluxDB it is also
     * the default retention policy's duration (0: leave it alone).
     */
    rollups: {
      stepSeconds: env.HERD_ROLLUP_STEP_SECONDS,
      retentionDays: env.HERD_ROLLUP_RETENTION_DAYS,
      rawRetentionHours: env.HERD_RAW_RETENTION_HOURS,
    },
    adminPassword: env.HERD_ADMIN_PASSWORD,
    /**
     * Where guests reach herd's /pxe routes (iPXE script, install kernel and initrd, the installed report):
     * HERD_PXE_BASE_URL, else herd's own listen address.
     */
    pxe: {
      baseUrl: (env.HERD_PXE_BASE_URL ?? listenUrl(env.HERD_HTTP_HOST, env.HERD_HTTP_PORT)).replace(
        /\/+$/,
        '',
      ),
    },
    hosts: {
      heartbeatSeconds: env.HERD_HEARTBEAT_SECONDS,
      /** A task whose worker is silent this long is taken over by another worker (api/tasks/worker.ts). */
      taskLeaseSeconds: env.HERD_TASK_LEASE_SECONDS,
      saveDir: env.HERD_SAVE_DIR,
      /**
       * herd's client certificate, its key and the CA for `qemu+tls://` hosts (each defaults to libvirt's pki layout:
       * /etc/pki/libvirt/clientcert.pem, /etc/pki/libvirt/private/clientkey.pem, /etc/pki/CA/cacert.pem); a host
       * URI's `pkipath` wins over them.
       */
      libvirtTls: {
        cert: env.HERD_LIBVIRT_TLS_CERT && path.resolve(env.HERD_LIBVIRT_TLS_CERT),
        key: env.HERD_LIBVIRT_TLS_KEY && path.resolve(env.HERD_LIBVIRT_TLS_KEY),
        ca: env.HERD_LIBVIRT_TLS_CA && path.resolve(env.HERD_LIBVIRT_TLS_CA),
      },
      mdns: env.HERD_MDNS === '1' || env.HERD_MDNS === 'true',
      /** Host allocations a process ranks from are read again once older than this (api/vms/vm-claim.repository.ts). */
      placementCacheMs: env.HERD_PLACEMENT_CACHE_MS,
      /** Ingest publishes its hosts' live summaries this often, for the other processes (ingest/live-share.ts). */
      livePublishMs: env.HERD_LIVE_PUBLISH_MS,
    },
    alerting: {
      evaluateSeconds: env.HERD_ALERT_EVALUATE_SECONDS,
      quotaReconcileSeconds: env.HERD_QUOTA_RECONCILE_SECONDS,
      /** The balancer's cycle (docs/balancer.md). */
      balancerSeconds: env.HERD_BALANCER_SECONDS,
      /** SMTP server of e-mail channels that name none. */
      smtp: { url: env.HERD_SMTP_URL, from: env.HERD_SMTP_FROM },
      /** Loopback, link-local or metadata addresses webhooks may reach all the same (webhook-targets.ts). */
      webhookAllow: env.HERD_WEBHOOK_ALLOW,
    },
    ldap: env.HERD_LDAP_URL
      ? {
          url: env.HERD_LDAP_URL,
          baseDn: env.HERD_LDAP_BASE_DN ?? '',
          bindDn: env.HERD_LDAP_BIND_DN,
          bindPassword: env.HERD_LDAP_BIND_PASSWORD,
          userFilter: env.HERD_LDAP_USER_FILTER,
          usernameAttribute: env.HERD_LDAP_USERNAME_ATTRIBUTE,
          groupRoles: parseGroupRoles(env.HERD_LDAP_GROUP_ROLES ?? ''),
        }
      : undefined,
    /** Kerberos (SPNEGO) sign-on on the session endpoint, when a keytab is given (api/auth/kerberos.ts). */
    kerberos: env.HERD_KERBEROS_KEYTAB
      ? {
          keytab: path.resolve(env.HERD_KERBEROS_KEYTAB),
          /** GSS host-based service name (`HTTP@host`): its key must be in the keytab. */
          principal: env.HERD_KERBEROS_PRINCIPAL ?? `${DEFAULTS.kerberosService}@${os.hostname()}`,
          /** Client realms accepted; empty: the realm of the service principal only. */
          realms: (env.HERD_KERBEROS_REALMS ?? '')
            .split(',')
            .map((r) => r.trim())
            .filter(Boolean),
        }
      : undefined,
    logLevel: env.HERD_LOG_LEVEL,
  };
}

/** http://<host>:<port> of herd's listen address; a wildcard address (every interface) becomes the machine's name. */
function listenUrl(host: string, port: number): string {
  const name = host === '0.0.0.0' || host === '::' ? os.hostname() : host;
  return `http://${isIP(name) === 6 ? `[${name}]` : name}:${port}`;
}

/** `cn=ops,ou=groups,dc=x=admin@1;cn=dev,ou=groups,dc=x=user@3`: members of a group get a role on a pool. */
type LdapRole = 'admin' | 'user' | 'monitor';

function parseGroupRoles(value: string): Array<{ groupDn: string; role: LdapRole; poolId: number }> {
  return value
    .split(';')
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry) => {
      const at = entry.lastIndexOf('=');
      const [role, poolId] = entry.slice(at + 1).split('@');
      return { groupDn: entry.slice(0, at).trim(), role: role as LdapRole, poolId: Number(poolId) };
    });
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Reads and validates the environment once; every bad variable is listed in the error. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map(
        (i) => `${i.path.join('.')}: ${i.message} (got ${JSON.stringify(env[String(i.path[0])])})`,
      ),
    );
  }
  const config = toConfig(parsed.data);
  if (config.collectd.securityLevel !== 'none' && !config.collectd.authFile) {
    throw new ConfigError([
      `HERD_COLLECTD_AUTH_FILE: required when HERD_COLLECTD_SECURITY_LEVEL is ${config.collectd.securityLevel}`,
    ]);
  }
  if (config.ldap && !config.ldap.baseDn) {
    throw new ConfigError(['HERD_LDAP_BASE_DN: required when HERD_LDAP_URL is set']);
  }
  if (!config.kerberos) {
    const orphans = (['HERD_KERBEROS_PRINCIPAL', 'HERD_KERBEROS_REALMS'] as const).filter(
      (v) => parsed.data[v],
    );
    if (orphans.length) throw new ConfigError(orphans.map((v) => `${v}: needs HERD_KERBEROS_KEYTAB`));
  } else {
    try {
      accessSync(config.kerberos.keytab, fsConstants.R_OK);
    } catch (err) {
      throw new ConfigError([
        `HERD_KERBEROS_KEYTAB: cannot read ${config.kerberos.keytab} (${(err as NodeJS.ErrnoException).code})`,
      ]);
    }
  }
  return config;
}
