import type { Config } from '../../lib/config.js';
import type { Logger } from '../../lib/log.js';

export type KerberosConfig = NonNullable<Config['kerberos']>;

/** What an accepted SPNEGO token proves: the client principal, and the token answering it (mutual auth). */
export interface Accepted {
  /** `user@REALM` */
  principal: string;
  /** Base64 token for `WWW-Authenticate: Negotiate <response>`, or null. */
  response: string | null;
}

/** The token was not accepted: forged, garbled, replayed, expired, or for another service. */
export class TokenRefused extends Error {
  override name = 'TokenRefused';
}

export interface Negotiator {
  /** The service principal found in the keytab, e.g. `HTTP/herd.example.com@EXAMPLE.COM`. */
  servicePrincipal: string;
  /** Client realms whose principals may sign on. */
  realms: string[];
  accept(token: string): Promise<Accepted>;
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

export type Gss = typeof import('kerberos');

/** The package is CommonJS whose exports Node cannot list statically: they are all on `default`. */
export async function loadGss(): Promise<Gss> {
  try {
    const mod = await import('kerberos');
    return (mod as Gss & { default?: Gss }).default ?? mod;
  } catch (err) {
    throw new Error(
      `HERD_KERBEROS_KEYTAB is set but the kerberos package cannot be loaded (${(err as Error).message}): ` +
        'install Debian libkrb5-dev, then npm install',
    );
  }
}

/**
 * The GSS-API acceptor of the `kerberos` package (MIT krb5 underneath), reading the service key from
 * HERD_KERBEROS_KEYTAB. The keytab reaches MIT krb5 through KRB5_KTNAME, which it reads from the process
 * environment: herd sets it here once, before any GSS call (so never from a worker thread, whose environment is
 * its own copy). The package is an optional native dependency, loaded only when Kerberos is configured. Fails,
 * naming what is wrong, when it cannot be loaded or the keytab has no key for the configured principal.
 */
export async function createNegotiator(cfg: KerberosConfig, log: Logger): Promise<Negotiator> {
  process.env.KRB5_KTNAME = `FILE:${cfg.keytab}`;
  const gss = await loadGss();
  const at = cfg.principal.indexOf('@');
  const [service, host] = [cfg.principal.slice(0, at), cfg.principal.slice(at + 1)];
  const servicePrincipal = await gss.principalDetails(service, host).catch((err: Error) => {
    throw new Error(
      `HERD_KERBEROS_KEYTAB: ${cfg.keytab} has no key for ${service}/${host}@… (HERD_KERBEROS_PRINCIPAL ${cfg.principal}): ${err.message}`,
    );
  });
  // The acceptor's credentials come from the keytab: acquiring them once proves the key can be read.
  await gss.initializeServer(cfg.principal).catch((err: Error) => {
    throw new Error(`Kerberos: cannot use ${servicePrincipal} from ${cfg.keytab}: ${err.message}`);
  });
  const realms = cfg.realms.length
    ? cfg.realms
    : [servicePrincipal.slice(servicePrincipal.lastIndexOf('@') + 1)];
  log.info({ servicePrincipal, realms }, 'Kerberos sign-on enabled');

  return {
    servicePrincipal,
    realms,
    async accept(token) {
      if (!BASE64.test(token)) throw new TokenRefused('the Negotiate token is not base64');
      // One context per request: SPNEGO over HTTP with Kerberos completes in one round trip.
      const server = await gss.initializeServer(cfg.principal).catch((err: Error) => {
        throw new Error(`Kerberos acceptor unavailable: ${err.message}`);
      });
      try {
        await server.step(token);
      } catch (err) {
        throw new TokenRefused((err as Error).message);
      }
      if (!server.contextComplete || !server.username)
        throw new TokenRefused('the security context is incomplete');
      return { principal: server.username, response: server.response || null };
    },
  };
}
