/**
 * The client against a real libvirtd (Debian's, run as root in its own mount namespace): the test driver through
 * `test+unix:///default?socket=…` and `test+unix:///<file>.xml?socket=…`, events caused by virsh outside the
 * client, errors compared with what virsh prints, packets captured from virsh decoded with this codec, and a
 * host that stops answering, cuts the connection or sends hostile bytes (through a recording proxy).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTestHost } from '../lib/testing/libvirt-hosts.js';
import { type Libvirtd, startLibvirtd } from '../lib/testing/libvirtd.js';
import { LibvirtClient } from './client.js';
import { LibvirtConnection } from './connection.js';
import {
  decodeRemoteError,
  ErrorCode,
  ErrorDomain,
  encodePacket,
  LibvirtError,
  MessageType,
} from './packet.js';
import {
  type DomainEvent,
  DomainEventId,
  decodeDomainEvent,
  decodeRet,
  KEEPALIVE_PROGRAM,
  P,
  Proc,
  REMOTE_PROGRAM,
} from './procedures.js';
import { type RecordingProxy, startRecordingProxy } from './test-proxy.js';
import { XdrReader } from './xdr.js';

const run = promisify(execFile);

let dir: string;
let daemon: Libvirtd;
let defaultUri: string;
let keeper: LibvirtClient;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'herd-libvirt-client-'));
  daemon = await startLibvirtd(path.join(dir, 'libvirtd'), {
    index: 12,
    hostUuid: '5e0f3c1a-4d2b-4e8f-9a6c-0000000000c1',
    kvm: false,
    // The read-only socket asks for SASL (the client must refuse clearly); the daemon pings idle clients every
    // second and drops one after 2 unanswered pings (the client must answer them).
    conf: ['auth_unix_ro = "sasl"', 'keepalive_interval = 1', 'keepalive_count = 2'],
  });
  defaultUri = `test+unix:///default?socket=${daemon.socket}`;
  // libvirtd keeps test:///default's state only while a connection holds it open: this one holds it, so that
  // what one virsh process changes the next one sees.
  keeper = await LibvirtClient.connect(defaultUri);
});

afterAll(async () => {
  await keeper?.close();
  await daemon?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function virsh(uri: string, ...args: string[]): Promise<string> {
  const { stdout } = await run('virsh', ['-q', '-c', uri, ...args], { timeout: 60_000 });
  return stdout.trim();
}

/** What virsh prints for a failing command: its `error: ` lines, without the prefix. */
async function virshErrors(uri: string, ...args: string[]): Promise<string[]> {
  try {
    await virsh(uri, ...args);
  } catch (err) {
    return String((err as { stderr?: string }).stderr ?? '')
      .split('\n')
      .filter((l) => l.startsWith('error: '))
      .map((l) => l.slice('error: '.length));
  }
  throw new Error(`virsh ${args.join(' ')} did not fail`);
}

function nextEvent(client: LibvirtClient, match: (ev: DomainEvent) => boolean): Promise<DomainEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no matching event within 20 s')), 20_000);
    const on = (ev: DomainEvent) => {
      if (!match(ev)) return;
      clearTimeout(timer);
      client.off('event', on);
      resolve(ev);
    };
    client.on('event', on);
  });
}

describe('the test driver through libvirtd', () => {
  it('opens test:///default and answers what virsh answers', async () => {
    const client = await LibvirtClient.connect(defaultUri);
    try {
      const [hostname, node, domains, caps] = await Promise.all([
        client.call(P.connectGetHostname, undefined),
        client.call(P.nodeGetInfo, undefined),
        client.call(P.connectListAllDomains, undefined),
        client.call(P.connectGetCapabilities, undefined),
      ]);
      expect(hostname).toBe(await virsh(defaultUri, 'hostname'));
      const nodeinfo = await virsh(defaultUri, 'nodeinfo');
      expect(nodeinfo).toContain(`CPU(s):              ${node.cpus}`);
      expect(nodeinfo).toContain(`CPU model:           ${node.model}`);
      expect(nodeinfo).toContain(`Memory size:         ${node.memoryKiB} KiB`);
      const test = domains.find((d) => d.name === 'test');
      expect(test?.uuid).toBe(await virsh(defaultUri, 'domuuid', 'test'));
      expect(caps).toContain('<capabilities>');
      const info = await client.call(P.domainGetInfo, test!);
      expect(info.vcpus).toBe(
        Number((await virsh(defaultUri, 'vcpucount', 'test', '--live', '--current')).trim()),
      );
      const xml = await client.call(P.domainGetXmlDesc, { dom: test! });
      expect(xml).toContain(`<uuid>${test!.uuid}</uuid>`);
    } finally {
      await client.close();
    }
  });

  it('opens a host file, test+unix:///<file>.xml, as its own fake host', async () => {
    const fileUri = await writeTestHost(dir, {
      name: 'rack7-host3',
      cpus: 12,
      memoryMiB: 24_576,
      domains: [
        { name: 'web1', uuid: '11111111-2222-4333-8444-555555555555', vcpus: 2, memoryMiB: 1024 },
        { name: 'db1', state: 'paused' },
      ],
    });
    const file = fileUri.slice('test://'.length);
    const client = await LibvirtClient.connect(`test+unix://${file}?socket=${daemon.socket}`);
    try {
      const node = await client.call(P.nodeGetInfo, undefined);
      expect([node.cpus, node.memoryKiB]).toEqual([12, 24_576n * 1024n]);
      const domains = await client.call(P.connectListAllDomains, undefined);
      expect(domains.map((d) => d.name).sort()).toEqual(['db1', 'web1']);
      const web1 = await client.call(P.domainLookupByUuid, '11111111-2222-4333-8444-555555555555');
      expect(web1.name).toBe('web1');
      const stats = await client.call(P.connectGetAllDomainStats, undefined);
      const states = Object.fromEntries(
        stats.map((s) => [s.domain.name, s.params.find((p) => p.field === 'state.state')?.value]),
      );
      expect(states).toEqual({ web1: 1, db1: 3 });
      const pools = await client.call(P.connectListAllStoragePools, undefined);
      expect(pools.map((p) => p.name)).toEqual(['default']);
      const vols = await client.call(P.storagePoolListAllVolumes, { pool: pools[0] });
      expect(vols.map((v) => v.name).sort()).toEqual(['disk1.img', 'disk2.img']);
    } finally {
      await client.close();
    }
  });

  it('defines, starts, suspends, resumes, saves, restores, destroys and undefines a domain', async () => {
    const client = await LibvirtClient.connect(defaultUri);
    try {
      const uuid = '0b5c2f1e-9a7d-4c3b-8e6f-1a2b3c4d5e6f';
      const dom = await client.call(
        P.domainDefineXml,
        `<domain type='test'><name>rpc-life</name><uuid>${uuid}</uuid><memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>`,
      );
      expect(dom.uuid).toBe(uuid);
      expect((await client.call(P.domainGetState, { dom })).state).toBe(5);
      await client.call(P.domainCreate, dom);
      const running = await client.call(P.domainLookupByUuid, uuid);
      expect((await client.call(P.domainGetState, { dom: running })).state).toBe(1);
      await client.call(P.domainSuspend, running);
      expect(await virsh(defaultUri, 'domstate', uuid)).toBe('paused');
      await client.call(P.domainResume, running);
      const saved = path.join(dir, 'rpc-life.save');
      await client.call(P.domainSave, { dom: running, to: saved });
      expect(await virsh(defaultUri, 'domstate', uuid)).toBe('shut off');
      await client.call(P.domainRestore, saved);
      expect(await virsh(defaultUri, 'domstate', uuid)).toBe('running');
      await client.call(P.domainDestroy, running);
      expect(await virsh(defaultUri, 'domstate', uuid)).toBe('shut off');
      await client.call(P.domainUndefine, dom);
      const err = await client.call(P.domainLookupByUuid, uuid).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LibvirtError);
      expect((err as LibvirtError).code).toBe(ErrorCode.NO_DOMAIN);
    } finally {
      await client.close();
    }
  });

  it("reports libvirt's errors with the code, domain and text virsh prints", async () => {
    const client = await LibvirtClient.connect(defaultUri);
    try {
      const missing = '00000000-0000-0000-0000-0000000000ff';
      const err = (await client.call(P.domainLookupByUuid, missing).catch((e: unknown) => e)) as LibvirtError;
      expect([err.code, err.domain, err.level, err.local]).toEqual([42, 12, 2, false]);
      // virsh hides this one behind its own "failed to get domain" (it falls back to a lookup by name); the
      // packets captured below show the daemon sends exactly this text.
      expect(err.message).toBe('Domain not found');
      const pool = (await client
        .call(P.storagePoolLookupByName, 'nosuch')
        .catch((e: unknown) => e)) as LibvirtError;
      expect([pool.code, pool.domain]).toEqual([ErrorCode.NO_STORAGE_POOL, ErrorDomain.TEST]);
      expect(await virshErrors(defaultUri, 'pool-info', 'nosuch')).toContain(pool.message);

      const test = await client.call(P.domainLookupByName, 'test');
      const invalid = (await client.call(P.domainResume, test).catch((e: unknown) => e)) as LibvirtError;
      expect(invalid.local).toBe(false);
      expect(await virshErrors(defaultUri, 'resume', 'test')).toContain(invalid.message);
    } finally {
      await client.close();
    }
  });

  it('multiplexes many concurrent calls on one socket', async () => {
    const client = await LibvirtClient.connect(defaultUri);
    try {
      const names = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          i % 2 ? client.call(P.connectGetHostname, undefined) : client.call(P.domainLookupByName, 'test'),
        ),
      );
      expect(names.filter((n) => typeof n === 'string')).toHaveLength(100);
      expect(names.filter((n) => typeof n === 'object' && n.name === 'test')).toHaveLength(100);
      expect(client.stats.unmatchedReplies).toBe(0);
    } finally {
      await client.close();
    }
  });

  it('receives lifecycle events, keyed by UUID, for changes virsh makes outside the client', async () => {
    const client = await LibvirtClient.connect(defaultUri);
    try {
      const callbackId = await client.registerDomainEvent(DomainEventId.LIFECYCLE);
      const uuid = '3f0e2d1c-4b5a-4697-8877-665544332211';
      const xmlFile = path.join(dir, 'evt.xml');
      await import('node:fs/promises').then((fs) =>
        fs.writeFile(
          xmlFile,
          `<domain type='test'><name>rpc-evt</name><uuid>${uuid}</uuid><memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>`,
        ),
      );
      const defined = nextEvent(client, (e) => e.domain.uuid === uuid && e.kind === 'lifecycle');
      await virsh(defaultUri, 'define', xmlFile);
      expect(await defined).toMatchObject({ kind: 'lifecycle', callbackId, eventName: 'defined' });
      await virsh(defaultUri, 'start', uuid);
      const suspended = nextEvent(
        client,
        (e) => e.domain.uuid === uuid && e.kind === 'lifecycle' && e.event === 3,
      );
      await virsh(defaultUri, 'suspend', uuid);
      expect(await suspended).toMatchObject({ eventName: 'suspended', domain: { name: 'rpc-evt', uuid } });
      const resumed = nextEvent(
        client,
        (e) => e.domain.uuid === uuid && e.kind === 'lifecycle' && e.event === 4,
      );
      await virsh(defaultUri, 'resume', uuid);
      expect(await resumed).toMatchObject({ eventName: 'resumed' });
      await client.deregisterDomainEvent(callbackId);
      await virsh(defaultUri, 'destroy', uuid);
      await virsh(defaultUri, 'undefine', uuid);
    } finally {
      await client.close();
    }
  });
});

describe('packets captured from virsh', () => {
  let proxy: RecordingProxy;
  beforeAll(async () => {
    proxy = await startRecordingProxy(path.join(dir, 'capture.sock'), daemon.socket);
  });
  afterAll(() => proxy.close());

  it("decodes virsh's calls and libvirtd's replies, errors and events with this codec", async () => {
    proxy.packets.length = 0;
    const uri = `test+unix:///default?socket=${proxy.path}`;
    await virsh(uri, 'hostname');
    await virsh(uri, 'list', '--all');
    await virshErrors(uri, 'domstate', '00000000-0000-0000-0000-0000000000ee');
    await virsh(uri, 'suspend', 'test');
    await virsh(uri, 'resume', 'test');

    const calls = proxy.packets.filter((p) => p.from === 'client' && p.header.type === MessageType.CALL);
    const procs = calls.map((p) => p.header.procedure);
    // virsh opens the way this client does: AUTH_LIST, the keepalive feature, CONNECT_OPEN with the name.
    expect(procs.slice(0, 3)).toEqual([Proc.AUTH_LIST, Proc.CONNECT_SUPPORTS_FEATURE, Proc.CONNECT_OPEN]);
    const open = calls.find((p) => p.header.procedure === Proc.CONNECT_OPEN)!;
    const r = new XdrReader(open.body);
    expect(r.optional((x) => x.string())).toBe('test:///default');
    for (const c of calls) expect(c.header.program).toBe(REMOTE_PROGRAM);

    const replyTo = (proc: number) =>
      proxy.packets.filter(
        (p) => p.from === 'server' && p.header.type === MessageType.REPLY && p.header.procedure === proc,
      );
    expect(decodeRet(P.authList, replyTo(Proc.AUTH_LIST)[0].body)).toEqual([0]);
    expect(decodeRet(P.connectGetHostname, replyTo(Proc.CONNECT_GET_HOSTNAME)[0].body)).toBe(
      await virsh(defaultUri, 'hostname'),
    );
    const lookups = replyTo(Proc.DOMAIN_LOOKUP_BY_UUID);
    expect(lookups.some((p) => p.header.status === 1)).toBe(true);
    const err = decodeRemoteError(lookups.find((p) => p.header.status === 1)!.body);
    expect([err.code, err.message]).toEqual([42, 'Domain not found']);
    // Every reply matches a call's serial and procedure.
    for (const reply of proxy.packets.filter(
      (p) => p.from === 'server' && p.header.type === MessageType.REPLY,
    )) {
      const call = calls.find(
        (c) => c.header.serial === reply.header.serial && c.header.procedure === reply.header.procedure,
      );
      expect(call).toBeDefined();
    }
    // Every reply body with status OK decodes exactly where this client knows the procedure.
    const known = new Map(Object.values(P).map((p) => [p.proc, p]));
    let decoded = 0;
    for (const reply of proxy.packets.filter(
      (p) => p.from === 'server' && p.header.type === MessageType.REPLY,
    )) {
      const proc = known.get(reply.header.procedure);
      if (!proc || reply.header.status !== 0) continue;
      decodeRet(proc, reply.body);
      decoded++;
    }
    expect(decoded).toBeGreaterThan(5);
  });

  it('decodes a lifecycle event message libvirtd pushed to virsh', async () => {
    proxy.packets.length = 0;
    const uri = `test+unix:///default?socket=${proxy.path}`;
    const watcher = execFile('virsh', ['-c', uri, 'event', '--event', 'lifecycle', '--loop']);
    try {
      const deadline = Date.now() + 20_000;
      // Wait until virsh has registered its callback (its reply is in the capture).
      while (
        !proxy.packets.some(
          (p) =>
            p.header.procedure === Proc.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY && p.from === 'server',
        )
      ) {
        if (Date.now() > deadline) throw new Error('virsh event never registered');
        await new Promise((r) => setTimeout(r, 50));
      }
      await virsh(defaultUri, 'suspend', 'test');
      await virsh(defaultUri, 'resume', 'test');
      while (
        !proxy.packets.some(
          (p) => p.header.type === MessageType.MESSAGE && p.header.program === REMOTE_PROGRAM,
        )
      ) {
        if (Date.now() > deadline) throw new Error('no event message captured');
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      watcher.kill('SIGTERM');
    }
    const message = proxy.packets.find(
      (p) => p.header.type === MessageType.MESSAGE && p.header.program === REMOTE_PROGRAM,
    )!;
    const ev = decodeDomainEvent(message.header.procedure, message.body);
    expect(ev).toMatchObject({ kind: 'lifecycle', eventName: 'suspended', domain: { name: 'test' } });
    expect(ev?.domain.uuid).toBe(await virsh(defaultUri, 'domuuid', 'test'));
  });
});

describe('a host that misbehaves', () => {
  let proxy: RecordingProxy;
  let uri: string;
  beforeAll(async () => {
    proxy = await startRecordingProxy(path.join(dir, 'hostile.sock'), daemon.socket);
    uri = `test+unix:///default?socket=${proxy.path}`;
  });
  afterAll(() => proxy.close());

  it('a call the host stops answering fails with a timeout; the connection then carries on', async () => {
    const client = await LibvirtClient.connect(uri, { keepalive: false });
    try {
      proxy.freeze(true);
      const err = (await client
        .call(P.connectGetHostname, undefined, { timeoutMs: 300 })
        .catch((e) => e)) as LibvirtError;
      expect(err.code).toBe(ErrorCode.OPERATION_TIMEOUT);
      expect(err.message).toMatch(/^Timed out during operation: no reply to ConnectGetHostname/);
      proxy.freeze(false);
      // The same connection still works.
      expect(typeof (await client.call(P.connectGetHostname, undefined))).toBe('string');
    } finally {
      proxy.freeze(false);
      await client.close();
    }
  });

  it('a host silent for keepalive interval × count is declared dead: calls fail, nothing hangs', async () => {
    const client = await LibvirtClient.connect(uri, {
      keepalive: { intervalMs: 150, count: 3 },
      callTimeoutMs: 0,
    });
    const closed = new Promise<LibvirtError | null>((resolve) => client.once('close', resolve));
    proxy.freeze(true);
    try {
      const err = (await client.call(P.connectGetHostname, undefined).catch((e) => e)) as LibvirtError;
      expect(err.message).toMatch(/^internal error: connection closed due to keepalive timeout/);
      expect((await closed)?.message).toBe(err.message);
      expect(client.stats.pingsSent).toBeGreaterThan(0);
      const after = (await client.call(P.connectGetHostname, undefined).catch((e) => e)) as LibvirtError;
      expect(after.message).toBe(err.message);
    } finally {
      proxy.freeze(false);
      client.destroy(null);
    }
  });

  it('sends its own pings while idle and the daemon answers them', async () => {
    const client = await LibvirtClient.connect(uri, { keepalive: { intervalMs: 100, count: 5 } });
    try {
      await new Promise((r) => setTimeout(r, 600));
      expect(client.closed).toBe(false);
      expect(client.stats.pingsSent).toBeGreaterThan(0);
      const pongs = proxy.packets.filter(
        (p) => p.from === 'server' && p.header.program === KEEPALIVE_PROGRAM && p.header.procedure === 2,
      );
      expect(pongs.length).toBeGreaterThan(0);
    } finally {
      await client.close();
    }
  });

  it("answers the daemon's pings, so an idle connection outlives the daemon's keepalive bound (1 s × 2)", async () => {
    // Its own pings far apart: only answering the daemon's keeps the connection.
    const client = await LibvirtClient.connect(uri, { keepalive: { intervalMs: 60_000, count: 3 } });
    try {
      while (client.stats.pingsAnswered < 4) await new Promise((r) => setTimeout(r, 100));
      expect(client.closed).toBe(false);
      expect(typeof (await client.call(P.connectGetHostname, undefined))).toBe('string');
    } finally {
      await client.close();
    }
  });

  it('unknown programs, unknown event procedures and replies for no call are counted and dropped', async () => {
    const client = await LibvirtClient.connect(uri);
    try {
      const header = {
        program: REMOTE_PROGRAM,
        version: 1,
        procedure: 9999,
        type: MessageType.MESSAGE,
        serial: 0,
        status: 0,
      };
      proxy.injectToClients(encodePacket(header, new Uint8Array(8)));
      proxy.injectToClients(encodePacket({ ...header, program: 0x12345678 }));
      proxy.injectToClients(
        encodePacket({
          ...header,
          type: MessageType.REPLY,
          procedure: Proc.CONNECT_GET_HOSTNAME,
          serial: 999_999,
        }),
      );
      proxy.injectToClients(
        encodePacket({ ...header, procedure: Proc.DOMAIN_EVENT_CALLBACK_LIFECYCLE }, new Uint8Array(3)),
      );
      expect(typeof (await client.call(P.connectGetHostname, undefined))).toBe('string');
      expect(client.stats).toMatchObject({ unknownMessages: 2, unmatchedReplies: 1, malformedEvents: 1 });
    } finally {
      await client.close();
    }
  });

  it('an event listener that throws is counted; the connection and the other listeners carry on', async () => {
    const client = await LibvirtClient.connect(uri);
    try {
      await client.registerDomainEvent(DomainEventId.LIFECYCLE);
      client.on('event', () => {
        throw new Error('subscriber bug');
      });
      const seen = nextEvent(client, (e) => e.kind === 'lifecycle' && e.eventName === 'resumed');
      await virsh(defaultUri, 'suspend', 'test');
      await virsh(defaultUri, 'resume', 'test');
      await seen;
      expect(client.stats.listenerErrors).toBeGreaterThan(0);
      expect((client.lastListenerError as Error).message).toBe('subscriber bug');
      expect(typeof (await client.call(P.connectGetHostname, undefined))).toBe('string');
    } finally {
      await client.close();
    }
  });

  it('a truncated reply fails that call with an RPC error; the connection carries on', async () => {
    const client = await LibvirtClient.connect(uri, { keepalive: false });
    try {
      proxy.freeze(true);
      const pending = client.call(P.connectGetHostname, undefined, { timeoutMs: 10_000 }).catch((e) => e);
      await new Promise((r) => setTimeout(r, 50));
      const serial = client.stats.callsSent + 0; // serials count calls from 1 on this connection
      const forged = encodePacket(
        {
          program: REMOTE_PROGRAM,
          version: 1,
          procedure: Proc.CONNECT_GET_HOSTNAME,
          type: MessageType.REPLY,
          serial,
          status: 0,
        },
        Buffer.from([0, 0, 0, 50, 0x61]),
      );
      proxy.injectToClients(forged);
      const err = (await pending) as LibvirtError;
      expect(err.code).toBe(ErrorCode.RPC);
      expect(err.message).toMatch(/^RPC error: malformed reply to ConnectGetHostname: truncated string/);
      proxy.freeze(false);
      expect(typeof (await client.call(P.connectGetHostname, undefined))).toBe('string');
    } finally {
      proxy.freeze(false);
      await client.close();
    }
  });

  it('a lying length (above 16 MiB, or below a header) closes the connection with an RPC error', async () => {
    for (const length of [16 * 1024 * 1024 + 5, 12]) {
      const client = await LibvirtClient.connect(uri, { keepalive: false });
      proxy.freeze(true);
      const pending = client.call(P.connectGetHostname, undefined, { timeoutMs: 10_000 }).catch((e) => e);
      const bad = Buffer.alloc(8);
      bad.writeUInt32BE(length);
      proxy.injectToClients(bad);
      const err = (await pending) as LibvirtError;
      expect(err.code).toBe(ErrorCode.RPC);
      expect(err.message).toMatch(/^RPC error: packet length/);
      expect(client.closed).toBe(true);
      proxy.freeze(false);
    }
  });

  it('a connection cut mid-call fails the call with End of file, never a hang', async () => {
    const client = await LibvirtClient.connect(uri, { keepalive: false, callTimeoutMs: 0 });
    proxy.freeze(true);
    const pending = client.call(P.connectGetHostname, undefined).catch((e) => e);
    proxy.cut();
    proxy.freeze(false);
    const err = (await pending) as LibvirtError;
    expect(err.code).toBe(ErrorCode.SYSTEM_ERROR);
    // Which of the two the kernel reports depends on whether the proxy's close raced our read.
    expect(err.message).toMatch(
      /^(End of file while reading data: Input\/output error|Cannot recv data: Connection reset by peer)$/,
    );
  });
});

describe('LibvirtConnection', () => {
  it('reconnects after the connection is cut, re-registers its event callbacks and emits reconnected', async () => {
    const proxy = await startRecordingProxy(path.join(dir, 'reconnect.sock'), daemon.socket);
    const conn = new LibvirtConnection(`test+unix:///default?socket=${proxy.path}`, {
      backoff: { initialMs: 50, maxMs: 500 },
    });
    try {
      await conn.start();
      const events: DomainEvent[] = [];
      await conn.subscribe(DomainEventId.LIFECYCLE, (ev) => events.push(ev));
      const reconnected = new Promise<void>((resolve) => conn.once('reconnected', resolve));
      const disconnected = new Promise<LibvirtError | null>((resolve) => conn.once('disconnected', resolve));
      proxy.cut();
      expect((await disconnected)?.code).toBe(ErrorCode.SYSTEM_ERROR);
      const whileDown = (await conn.call(P.connectGetHostname, undefined).catch((e) => e)) as LibvirtError;
      expect(whileDown.code).toBe(ErrorCode.NO_CONNECT);
      await reconnected;
      const uuid = await virsh(defaultUri, 'domuuid', 'test');
      await virsh(defaultUri, 'suspend', 'test');
      await virsh(defaultUri, 'resume', 'test');
      const deadline = Date.now() + 20_000;
      while (!events.some((e) => e.kind === 'lifecycle' && e.eventName === 'resumed')) {
        if (Date.now() > deadline) throw new Error('no event after reconnecting');
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(events.find((e) => e.kind === 'lifecycle' && e.eventName === 'suspended')?.domain.uuid).toBe(
        uuid,
      );
    } finally {
      await conn.close();
      await proxy.close();
    }
  });

  it('keeps retrying with backoff while the daemon is unreachable, then connects', async () => {
    const sock = path.join(dir, 'late.sock');
    const conn = new LibvirtConnection(`test+unix:///default?socket=${sock}`, {
      backoff: { initialMs: 50, maxMs: 200 },
    });
    const failures: number[] = [];
    conn.on('connect-failed', (_err, delay) => failures.push(delay));
    try {
      await expect(conn.start()).rejects.toThrow(/Failed to connect to socket/);
      while (failures.length < 3) await new Promise((r) => setTimeout(r, 20));
      const proxy = await startRecordingProxy(sock, daemon.socket);
      try {
        await conn.waitConnected(10_000);
        expect(typeof (await conn.call(P.connectGetHostname, undefined))).toBe('string');
      } finally {
        await conn.close();
        await proxy.close();
      }
    } finally {
      await conn.close();
    }
  });
});

describe('opening', () => {
  it('a daemon asking for SASL (here its read-only socket) gets a clear error, not a hang', async () => {
    const ro = path.join(path.dirname(daemon.socket), 'libvirt-sock-ro');
    const err = (await LibvirtClient.connect(`test+unix:///default?socket=${ro}`, { openFlags: 1 }).catch(
      (e) => e,
    )) as LibvirtError;
    expect(err.code).toBe(ErrorCode.AUTH_FAILED);
    expect(err.message).toMatch(/requires sasl authentication, which herd's client does not support/);
  });

  it('a daemon that never answers the open fails within the connect timeout', async () => {
    const proxy = await startRecordingProxy(path.join(dir, 'mute.sock'), daemon.socket);
    proxy.freeze(true);
    try {
      const err = (await LibvirtClient.connect(`test+unix:///default?socket=${proxy.path}`, {
        connectTimeoutMs: 300,
      }).catch((e) => e)) as LibvirtError;
      expect(err.code).toBe(ErrorCode.OPERATION_TIMEOUT);
      expect(err.message).toMatch(/no reply to AuthList/);
    } finally {
      await proxy.close();
    }
  });

  it('refuses plain test:/// (the test driver lives in libvirt clients) with the URI to use instead', async () => {
    await expect(LibvirtClient.connect('test:///default')).rejects.toThrow(
      /test\+unix:\/\/\/default\?socket=/,
    );
  });
});
