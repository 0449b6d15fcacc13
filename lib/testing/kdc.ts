import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { loadGss } from '../../api/auth/kerberos.js';
import { freePort } from '../embedded-postgres.js';
import { type Daemon, startDaemon } from './daemon.js';

const run = promisify(execFile);

export const KDC_REALM = 'HERD.TEST';

export interface Kdc {
  realm: string;
  dir: string;
  /** The krb5.conf of clients and of herd's acceptor (KRB5_CONFIG): this KDC on 127.0.0.1, no DNS at all. */
  krb5Conf: string;
  /** KRB5_CONFIG, and the acceptor's replay cache (KRB5RCACHEDIR) in the temporary directory. */
  env: Record<string, string>;
  /** The keys of these principals (`HTTP/localhost`) exported to a new keytab, keys left as they are. */
  keytab(principals: string[]): Promise<string>;
  /**
   * Real `kinit`, the password on stdin, into a fresh ccache: its name (`FILE:…`) for KRB5CCNAME. `lifetime`
   * is kinit's `-l` (`5s`).
   */
  kinit(user: string, password: string, lifetime?: string): Promise<string>;
  stop(): Promise<void>;
}

/**
 * A real MIT KDC (Debian's krb5-kdc and krb5-admin-server): a temporary realm made with `kdb5_util create -s`,
 * principals added with `kadmin.local`, and `krb5kdc` in the foreground on a free loopback port (TCP, and UDP on
 * the same number), stopped and removed by `stop()`. Users get their password, services a random key.
 */
export async function startKdc(options: {
  users: Array<{ name: string; password: string }>;
  services: string[];
  realm?: string;
}): Promise<Kdc> {
  const realm = options.realm ?? KDC_REALM;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'herd-kdc-'));
  const port = await freePort();
  const krb5Conf = path.join(dir, 'krb5.conf');
  const kdcConf = path.join(dir, 'kdc.conf');
  await writeFile(
    krb5Conf,
    `[libdefaults]
  default_realm = ${realm}
  dns_lookup_kdc = false
  dns_lookup_realm = false
  rdns = false
  dns_canonicalize_hostname = false
  udp_preference_limit = 1
  # Tickets expire when they say (the default allows five minutes of clock skew): all clocks here are one.
  clockskew = 1
  default_ccache_name = FILE:${path.join(dir, 'ccache-default')}
[realms]
  ${realm} = {
    kdc = 127.0.0.1:${port}
  }
[domain_realm]
  localhost = ${realm}
  .test = ${realm}
`,
  );
  await writeFile(
    kdcConf,
    `[kdcdefaults]
  kdc_listen = 127.0.0.1:${port}
  kdc_tcp_listen = 127.0.0.1:${port}
[realms]
  ${realm} = {
    database_name = ${path.join(dir, 'principal')}
    key_stash_file = ${path.join(dir, 'stash')}
    acl_file = ${path.join(dir, 'kadm5.acl')}
    max_life = 1h
  }
[logging]
  kdc = FILE:${path.join(dir, 'kdc.log')}
`,
  );
  await writeFile(path.join(dir, 'kadm5.acl'), '');
  const env = { KRB5_CONFIG: krb5Conf, KRB5RCACHEDIR: dir };
  const toolEnv = { ...process.env, ...env, KRB5_KDC_PROFILE: kdcConf };
  const kadmin = (query: string) =>
    run('kadmin.local', ['-r', realm, '-q', query], { env: toolEnv, timeout: 10_000 }).then(({ stderr }) => {
      // kadmin.local exits 0 whatever the query's fate: its complaints come on stderr.
      const problems = stderr
        .split('\n')
        .filter((l) => l.trim() && !/^(No policy specified|Authenticating as)/.test(l));
      if (problems.length) throw new Error(`kadmin.local ${query}: ${problems.join('; ')}`);
    });

  let krb5kdc: Daemon | undefined;
  const stop = async () => {
    await krb5kdc?.stop();
    await rm(dir, { recursive: true, force: true });
  };

  try {
    await run('kdb5_util', ['create', '-s', '-r', realm, '-P', 'kdc-master-secret'], {
      env: toolEnv,
      timeout: 10_000,
    });
    for (const u of options.users) await kadmin(`addprinc -pw ${u.password} ${u.name}`);
    for (const s of options.services) await kadmin(`addprinc -randkey ${s}`);
    // -n keeps krb5kdc in the foreground.
    const kdc = startDaemon('krb5kdc', ['-n', '-r', realm], toolEnv);
    krb5kdc = kdc;
    await waitForPort(port, () => kdc.child.exitCode, kdc.stderr);
  } catch (err) {
    await stop();
    throw err;
  }

  let keytabs = 0;
  let ccaches = 0;
  return {
    realm,
    dir,
    krb5Conf,
    env,
    async keytab(principals) {
      const file = path.join(dir, `service-${++keytabs}.keytab`);
      for (const p of principals) await kadmin(`ktadd -norandkey -k ${file} ${p}`);
      return file;
    },
    async kinit(user, password, lifetime) {
      const ccache = `FILE:${path.join(dir, `ccache-${++ccaches}`)}`;
      await new Promise<void>((resolve, reject) => {
        const kinit = spawn('kinit', [...(lifetime ? ['-l', lifetime] : []), `${user}@${realm}`], {
          env: { ...process.env, ...env, KRB5CCNAME: ccache },
          stdio: ['pipe', 'ignore', 'pipe'],
        });
        let out = '';
        kinit.stderr.on('data', (d) => {
          out += d;
        });
        kinit.on('error', reject);
        kinit.on('exit', (code) =>
          code === 0 ? resolve() : reject(new Error(`kinit ${user}: ${out.trim()}`)),
        );
        kinit.stdin.end(`${password}\n`);
      });
      return ccache;
    },
    stop,
  };
}

async function waitForPort(port: number, exitCode: () => number | null, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (exitCode() !== null) throw new Error(`krb5kdc exited with ${exitCode()}: ${stderr()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`krb5kdc did not listen on 127.0.0.1:${port} within 10 s: ${stderr()}`);
}

/**
 * A SPNEGO token for `service` (`HTTP@localhost`) from the `kerberos` package's client side, with the tickets of
 * `ccache`. The ccache is read from this process's environment: KRB5CCNAME is set here.
 */
export async function negotiateToken(service: string, ccache: string): Promise<string> {
  process.env.KRB5CCNAME = ccache;
  const gss = await loadGss();
  const client = await gss.initializeClient(service, { mechOID: gss.GSS_MECH_OID_SPNEGO });
  return client.step('');
}
