/**
 * The network transports for real, all on loopback: libvirtd's TCP and TLS listeners (certificates made here with
 * openssl, in libvirt's pki layout) and SSH through Debian's openssh-server run as our own sshd on a free port
 * with host and user keys made here (the machine's sshd is not touched).
 */
import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostDriverFactory } from '../api/hosts/driver/index.js';
import { loadConfig } from '../lib/config.js';
import { createLogger } from '../lib/log.js';
import { type Daemon, startDaemon } from '../lib/testing/daemon.js';
import { type Libvirtd, startLibvirtd } from '../lib/testing/libvirtd.js';
import { LibvirtClient } from './client.js';
import { ErrorCode, type LibvirtError } from './packet.js';
import { type DomainEvent, DomainEventId, P } from './procedures.js';

const run = promisify(execFile);

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function openssl(cwd: string, ...args: string[]): Promise<void> {
  await run('openssl', args, { cwd });
}

/** A new RSA key (mode 0600) and, per `args`, a request or a self-signed certificate for CN=name. */
async function newKey(dir: string, name: string, args: string[]): Promise<string> {
  const key = path.join(dir, `${name}.key`);
  await openssl(
    dir,
    ...'req -newkey rsa:2048 -nodes -keyout'.split(' '),
    key,
    '-subj',
    `/CN=${name}`,
    ...args,
  );
  await chmod(key, 0o600);
  return key;
}

/** A CA, with the extensions libvirt's TLS sanity checks require. */
async function makeCa(dir: string, name: string): Promise<{ key: string; cert: string }> {
  await mkdir(dir, { recursive: true });
  const cert = path.join(dir, `${name}.pem`);
  const key = await newKey(dir, name, [
    ...'-x509 -days 3650 -addext basicConstraints=critical,CA:TRUE'.split(' '),
    ...'-addext keyUsage=critical,keyCertSign,cRLSign -out'.split(' '),
    cert,
  ]);
  return { key, cert };
}

/** A server or client certificate signed by `ca`. */
async function issue(
  dir: string,
  ca: { key: string; cert: string },
  name: string,
  usage: 'serverAuth' | 'clientAuth',
): Promise<{ key: string; cert: string }> {
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.pem`);
  const ext = path.join(dir, `${name}.ext`);
  const key = await newKey(dir, name, ['-out', csr]);
  await writeFile(
    ext,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      `extendedKeyUsage=${usage}`,
      ...(usage === 'serverAuth' ? ['subjectAltName=IP:127.0.0.1,DNS:localhost'] : []),
      '',
    ].join('\n'),
  );
  await openssl(
    dir,
    ...['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', '3650'],
    ...['-extfile', ext, '-out', cert],
  );
  return { key, cert };
}

let dir: string;
let daemon: Libvirtd;
let tcpPort: number;
let tlsPort: number;
let pki: string;
let keeper: LibvirtClient;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'herd-libvirt-transports-'));
  const certs = path.join(dir, 'certs');
  const ca = await makeCa(certs, 'herd-test-ca');
  const server = await issue(certs, ca, 'server', 'serverAuth');
  const client = await issue(certs, ca, 'client', 'clientAuth');
  // The client side in libvirt's pki layout, found through the URI's pkipath.
  pki = path.join(dir, 'pki');
  await mkdir(pki, { mode: 0o700 });
  await copyFile(ca.cert, path.join(pki, 'cacert.pem'));
  await copyFile(client.cert, path.join(pki, 'clientcert.pem'));
  await copyFile(client.key, path.join(pki, 'clientkey.pem'));
  await chmod(path.join(pki, 'clientkey.pem'), 0o600);
  [tcpPort, tlsPort] = [await freePort(), await freePort()];
  daemon = await startLibvirtd(path.join(dir, 'libvirtd'), {
    index: 13,
    hostUuid: '5e0f3c1a-4d2b-4e8f-9a6c-0000000000c2',
    kvm: false,
    listen: true,
    conf: [
      'listen_tcp = 1',
      'listen_tls = 1',
      'listen_addr = "127.0.0.1"',
      `tcp_port = "${tcpPort}"`,
      `tls_port = "${tlsPort}"`,
      'auth_tcp = "none"',
      'auth_tls = "none"',
      `ca_file = "${ca.cert}"`,
      `cert_file = "${server.cert}"`,
      `key_file = "${server.key}"`,
    ],
  });
  // Holds test:///default open, so what virsh changes persists between its processes.
  keeper = await LibvirtClient.connect(`test+unix:///default?socket=${daemon.socket}`);
});

afterAll(async () => {
  await keeper?.close();
  await daemon?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function roundTrip(uri: string, options = {}) {
  const client = await LibvirtClient.connect(uri, options);
  try {
    const [hostname, node, domains] = await Promise.all([
      client.call(P.connectGetHostname, undefined),
      client.call(P.nodeGetInfo, undefined),
      client.call(P.connectListAllDomains, undefined),
    ]);
    return { hostname, cpus: node.cpus, domains: domains.map((d) => d.name), peer: client.peer };
  } finally {
    await client.close();
  }
}

describe('TCP', () => {
  it('qemu+tcp:// and test+tcp:// reach libvirtd on loopback; the name sent drops the host and port', async () => {
    const unix = await roundTrip(`test+unix:///default?socket=${daemon.socket}`);
    const tcp = await roundTrip(`test+tcp://127.0.0.1:${tcpPort}/default`);
    expect(tcp).toEqual({ ...unix, peer: `tcp:127.0.0.1:${tcpPort}` });
    const qemu = await roundTrip(`qemu+tcp://127.0.0.1:${tcpPort}/system`);
    expect(qemu.cpus).toBeGreaterThan(0);
  });
});

describe('TLS', () => {
  it('qemu+tls:// with the client certificate from pkipath (libvirt layout) verifies the daemon and is verified', async () => {
    const tls = await roundTrip(`qemu+tls://127.0.0.1:${tlsPort}/system?pkipath=${pki}`);
    expect(tls.peer).toBe(`tls:127.0.0.1:${tlsPort}`);
    expect(tls.cpus).toBeGreaterThan(0);
    const test = await roundTrip(`test+tls://127.0.0.1:${tlsPort}/default`, {
      tls: {
        ca: path.join(pki, 'cacert.pem'),
        cert: path.join(pki, 'clientcert.pem'),
        key: path.join(pki, 'clientkey.pem'),
      },
    });
    expect(test.domains).toContain('test');
  });

  it('concurrent calls over TLS all get their replies (one TLS record per message)', async () => {
    // Without keepalive pings nothing else nudges libvirtd: calls whose messages shared a TLS record would
    // wait for ever (here: time out).
    const client = await LibvirtClient.connect(`test+tls://127.0.0.1:${tlsPort}/default?pkipath=${pki}`, {
      keepalive: false,
      callTimeoutMs: 10_000,
    });
    try {
      const replies = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          i % 2 ? client.call(P.connectGetHostname, undefined) : client.call(P.domainLookupByName, 'test'),
        ),
      );
      expect(replies).toHaveLength(50);
    } finally {
      await client.close();
    }
  });

  it('a daemon certificate from another CA is refused, clearly and at once', async () => {
    const other = await makeCa(path.join(dir, 'other'), 'other-ca');
    const err = (await LibvirtClient.connect(`qemu+tls://127.0.0.1:${tlsPort}/system`, {
      tls: { ca: other.cert, cert: path.join(pki, 'clientcert.pem'), key: path.join(pki, 'clientkey.pem') },
    }).catch((e) => e)) as LibvirtError;
    expect(err.code).toBe(ErrorCode.SYSTEM_ERROR);
    expect(err.message).toMatch(
      /^Failed to connect to 127\.0\.0\.1:\d+: .*(self.signed|unable to verify|certificate)/i,
    );
  });

  it("herd's host driver takes its certificate files from HERD_LIBVIRT_TLS_* (a URI's pkipath wins)", async () => {
    const config = loadConfig({
      HERD_LIBVIRT_TLS_CA: path.join(pki, 'cacert.pem'),
      HERD_LIBVIRT_TLS_CERT: path.join(pki, 'clientcert.pem'),
      HERD_LIBVIRT_TLS_KEY: path.join(pki, 'clientkey.pem'),
    });
    const open = hostDriverFactory({ tls: config.hosts.libvirtTls });
    const log = createLogger('silent');
    const driver = await open(`qemu+tls://127.0.0.1:${tlsPort}/system`, log);
    try {
      expect((await driver.inventory()).cpus).toBeGreaterThan(0);
    } finally {
      await driver.close();
    }
    await expect(open(`qemu+tls://127.0.0.1:${tlsPort}/system?pkipath=${dir}/nowhere`, log)).rejects.toThrow(
      `Cannot read TLS file '${dir}/nowhere/cacert.pem': ENOENT`,
    );
  });

  it('missing certificate files name the file', async () => {
    const err = (await LibvirtClient.connect(
      `qemu+tls://127.0.0.1:${tlsPort}/system?pkipath=${dir}/nowhere`,
    ).catch((e) => e)) as LibvirtError;
    expect(err.message).toBe(`Cannot read TLS file '${dir}/nowhere/cacert.pem': ENOENT`);
  });
});

describe('SSH', () => {
  let sshd: Daemon;
  let sshPort: number;
  let sshOptions: { identityFile: string; knownHostsFile: string };

  beforeAll(async () => {
    const ssh = path.join(dir, 'ssh');
    await mkdir(ssh, { mode: 0o700 });
    const keygen = (file: string) => run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', file]);
    await keygen(path.join(ssh, 'host_key'));
    await keygen(path.join(ssh, 'id'));
    await copyFile(path.join(ssh, 'id.pub'), path.join(ssh, 'authorized_keys'));
    sshPort = await freePort();
    await writeFile(
      path.join(ssh, 'sshd_config'),
      [
        `Port ${sshPort}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${path.join(ssh, 'host_key')}`,
        `PidFile ${path.join(ssh, 'sshd.pid')}`,
        `AuthorizedKeysFile ${path.join(ssh, 'authorized_keys')}`,
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'StrictModes no',
        'PermitRootLogin prohibit-password',
        'LogLevel ERROR',
        '',
      ].join('\n'),
    );
    const hostKey = (await readFile(path.join(ssh, 'host_key.pub'), 'utf8')).trim();
    await writeFile(path.join(ssh, 'known_hosts'), `[127.0.0.1]:${sshPort} ${hostKey}\n`);
    // sshd's privilege separation directory (made by the ssh service on a machine that runs one).
    await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
    sshd = startDaemon('/usr/sbin/sshd', ['-D', '-e', '-f', path.join(ssh, 'sshd_config')]);
    const deadline = Date.now() + 20_000;
    for (;;) {
      const up = await new Promise<boolean>((resolve) => {
        const s = net.createConnection({ host: '127.0.0.1', port: sshPort }, () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      });
      if (up) break;
      if (Date.now() > deadline) throw new Error(`sshd did not listen: ${sshd.stderr()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    sshOptions = { identityFile: path.join(ssh, 'id'), knownHostsFile: path.join(ssh, 'known_hosts') };
  });

  afterAll(async () => {
    await sshd?.stop();
  });

  const sshChildren = async () => {
    const { stdout } = await run('ps', ['-o', 'comm=', '--ppid', String(process.pid)]).catch(() => ({
      stdout: '',
    }));
    return stdout.split('\n').filter((c) => c.trim() === 'ssh').length;
  };

  it('qemu+ssh://root@127.0.0.1/system?socket=… tunnels through one ssh process running nc -U', async () => {
    const uri = `qemu+ssh://root@127.0.0.1:${sshPort}/system?socket=${daemon.socket}`;
    const before = await sshChildren();
    const client = await LibvirtClient.connect(uri, { ssh: sshOptions });
    try {
      expect(await sshChildren()).toBe(before + 1);
      const calls = await Promise.all(
        Array.from({ length: 20 }, () => client.call(P.nodeGetInfo, undefined)),
      );
      expect(new Set(calls.map((n) => n.cpus)).size).toBe(1);
      expect(client.peer).toBe('ssh:root@127.0.0.1');
    } finally {
      await client.close();
    }
    const deadline = Date.now() + 10_000;
    while ((await sshChildren()) > before && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    expect(await sshChildren()).toBe(before);
  });

  it('events arrive through the tunnel', async () => {
    const uri = `test+ssh://root@127.0.0.1:${sshPort}/default?socket=${daemon.socket}`;
    const client = await LibvirtClient.connect(uri, { ssh: sshOptions });
    try {
      await client.registerDomainEvent(DomainEventId.LIFECYCLE);
      const got = new Promise<DomainEvent>((resolve) =>
        client.on('event', (e) => e.kind === 'lifecycle' && e.eventName === 'suspended' && resolve(e)),
      );
      await run('virsh', ['-c', `test+unix:///default?socket=${daemon.socket}`, 'suspend', 'test']);
      await run('virsh', ['-c', `test+unix:///default?socket=${daemon.socket}`, 'resume', 'test']);
      expect((await got).domain.name).toBe('test');
    } finally {
      await client.close();
    }
  });

  it("a key the server does not accept fails with ssh's own message, not a hang", async () => {
    const other = path.join(dir, 'ssh', 'stranger');
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
    const err = (await LibvirtClient.connect(
      `qemu+ssh://root@127.0.0.1:${sshPort}/system?socket=${daemon.socket}`,
      { ssh: { ...sshOptions, identityFile: other } },
    ).catch((e) => e)) as LibvirtError;
    expect(err.code).toBe(ErrorCode.SYSTEM_ERROR);
    expect(err.message).toMatch(
      /^End of file while reading data: Input\/output error: .*Permission denied \(publickey\)/s,
    );
  });

  it('refuses a URI whose host, user or socket is not a plain name or path', async () => {
    for (const uri of [
      `qemu+ssh://root@-oProxyCommand=x/system`,
      `qemu+ssh://ro;ot@127.0.0.1/system`,
      `qemu+ssh://root@127.0.0.1/system?socket=/tmp/a;rm`,
      `qemu+ssh://root@127.0.0.1/system?command=/bin/sh`,
    ]) {
      await expect(LibvirtClient.connect(uri, { ssh: sshOptions })).rejects.toThrow(/^invalid argument: /);
    }
    // Nothing was started for them.
    expect(await sshChildren()).toBe(0);
  });
});
