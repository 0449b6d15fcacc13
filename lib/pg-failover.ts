import pg from 'pg';
import type { Logger } from './log.js';
import { type PgHost, type PgTarget, redactPgUrl, type TargetSessionAttrs } from './pg-url.js';

/**
 * A pg pool over the hosts of a multi-host URL (lib/pg-url.ts), choosing the host as libpq does: the hosts in
 * their order, the first whose session fits `target_session_attrs` (read-write: `transaction_read_only` off;
 * primary: not in recovery; …). The choice is kept until a connection to that host fails or stops fitting (a
 * primary gone, a standby promoted meanwhile); the next connection then looks again. Every new connection is
 * checked once connected, so a pool never hands out a session on a host that does not fit (a demoted primary).
 * While no host fits, a connection fails with SQLSTATE 08001 (herd's API answers 503).
 */

/** The probe of a host that answered: is it in recovery, is its session read-only. */
interface HostState {
  recovery: boolean;
  readOnly: boolean;
}

/** How long a failed look at every host is answered from memory before the hosts are tried again. */
const RETRY_AFTER_FAILURE_MS = 200;
/** The wait for one host when the URL gives no connect_timeout: a host that swallows packets cannot hold a switch. */
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** No host fits right now: "unable to establish SQL connection" (SQLSTATE 08001). */
export class NoFittingHostError extends Error {
  override name = 'NoFittingHostError';
  readonly code = '08001';
}

export function fits(state: HostState, attrs: TargetSessionAttrs): boolean {
  switch (attrs) {
    case 'read-write':
      return !state.readOnly;
    case 'read-only':
      return state.readOnly;
    case 'primary':
      return !state.recovery;
    case 'standby':
      return state.recovery;
    default:
      return true;
  }
}

const STATE_QUERY =
  "SELECT pg_is_in_recovery() AS recovery, current_setting('transaction_read_only') = 'on' AS read_only";

async function stateOf(client: pg.Client): Promise<HostState> {
  const { rows } = await client.query<{ recovery: boolean; read_only: boolean }>(STATE_QUERY);
  return { recovery: rows[0]!.recovery, readOnly: rows[0]!.read_only };
}

const where = (h: PgHost) => `${h.host.includes(':') ? `[${h.host}]` : h.host || 'localhost'}:${h.port}`;

class HostChoice {
  private current: PgHost | undefined;
  private looking: Promise<PgHost> | undefined;
  private failed: { at: number; error: Error } | undefined;

  constructor(
    private readonly target: PgTarget,
    private readonly config: pg.ClientConfig,
    private readonly log: Logger | undefined,
  ) {}

  pick(): Promise<PgHost> {
    if (this.current) return Promise.resolve(this.current);
    this.looking ??= this.look().finally(() => {
      this.looking = undefined;
    });
    return this.looking;
  }

  /** A connection to `host` failed or did not fit: the next one looks at every host again. */
  drop(host: PgHost, reason: string): void {
    if (this.current !== host) return;
    this.current = undefined;
    this.log?.warn({ host: where(host), reason }, 'PostgreSQL host left; looking for another');
  }

  private async look(): Promise<PgHost> {
    if (this.failed && Date.now() - this.failed.at < RETRY_AFTER_FAILURE_MS) throw this.failed.error;
    const attrs = this.target.targetSessionAttrs;
    // prefer-standby: a standby if any answers, else any host (libpq's second pass).
    const passes: TargetSessionAttrs[] = attrs === 'prefer-standby' ? ['standby', 'any'] : [attrs];
    const seen = new Map<PgHost, HostState | Error>();
    for (const pass of passes) {
      for (const host of this.target.hosts) {
        let state = seen.get(host);
        if (!state) {
          state = await this.probe(host).catch((err: Error) => err);
          seen.set(host, state);
        }
        if (!(state instanceof Error) && fits(state, pass)) {
          this.failed = undefined;
          this.current = host;
          this.log?.info({ host: where(host), targetSessionAttrs: attrs }, 'PostgreSQL host chosen');
          return host;
        }
      }
    }
    const reasons = [...seen].map(([host, state]) => {
      if (state instanceof Error) return `${where(host)}: ${state.message}`;
      return `${where(host)}: ${state.recovery ? 'in recovery (standby)' : state.readOnly ? 'read-only' : 'primary'}`;
    });
    const error = new NoFittingHostError(
      `no PostgreSQL host of ${redactPgUrl(this.target)} fits target_session_attrs=${attrs} (${reasons.join('; ')})`,
    );
    this.failed = { at: Date.now(), error };
    throw error;
  }

  private async probe(host: PgHost): Promise<HostState> {
    const client = new pg.Client(this.config);
    client.host = host.host;
    client.port = host.port;
    client.on('error', () => undefined);
    try {
      await client.connect();
      return await stateOf(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}

function oneHostUrl(target: PgTarget): string {
  const user = target.user === undefined ? '' : encodeURIComponent(target.user);
  const password = target.password === undefined ? '' : `:${encodeURIComponent(target.password)}`;
  const query = new URLSearchParams(target.params).toString();
  return `postgres://${user}${password}${user || password ? '@' : ''}localhost/${encodeURIComponent(target.database ?? '')}${query ? `?${query}` : ''}`;
}

/** The pool for a multi-host target; `max` as pg.Pool's. */
export function createFailoverPool(target: PgTarget, options: { max?: number; log?: Logger } = {}): pg.Pool {
  const timeout = target.connectTimeoutSeconds;
  // node-postgres reads user, password, database and the other parameters (sslmode, …) from a one-host URL; the
  // host and port are set on each connection.
  const config: pg.ClientConfig = {
    connectionString: oneHostUrl(target),
    connectionTimeoutMillis: timeout === undefined ? DEFAULT_CONNECT_TIMEOUT_MS : timeout * 1000,
  };
  const choice = new HostChoice(target, config, options.log);
  const attrs = target.targetSessionAttrs;

  class FailoverClient extends pg.Client {
    constructor(poolConfig: pg.ClientConfig) {
      // The per-host timeout goes to the client only: pg-pool's own timer would count the look at every host too.
      super({ ...poolConfig, connectionTimeoutMillis: config.connectionTimeoutMillis });
    }

    // pg-pool calls connect(callback); others await connect().
    override connect(callback?: (err: any, client?: any) => void): any {
      const connected = this.connectToChosenHost();
      if (!callback) return connected.then(() => this);
      connected.then(
        () => callback(null, this),
        (err: Error) => callback(err),
      );
    }

    private async connectToChosenHost(): Promise<void> {
      const host = await choice.pick();
      this.host = host.host;
      this.port = host.port;
      try {
        await new Promise<void>((resolve, reject) =>
          super.connect((err: Error | undefined) => (err ? reject(err) : resolve())),
        );
      } catch (err) {
        choice.drop(host, (err as Error).message);
        throw err;
      }
      if (attrs === 'any' || attrs === 'prefer-standby') return;
      let state: HostState;
      try {
        state = await stateOf(this);
      } catch (err) {
        choice.drop(host, (err as Error).message);
        await this.end().catch(() => undefined);
        throw err;
      }
      if (!fits(state, attrs)) {
        choice.drop(host, `no longer fits target_session_attrs=${attrs}`);
        await this.end().catch(() => undefined);
        throw new NoFittingHostError(
          `PostgreSQL at ${where(host)} no longer fits target_session_attrs=${attrs}`,
        );
      }
    }
  }

  return new pg.Pool({
    connectionString: config.connectionString,
    max: options.max,
    Client: FailoverClient as unknown as new () => pg.ClientBase,
  });
}
