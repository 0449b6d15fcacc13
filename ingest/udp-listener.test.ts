import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { expect, test } from 'vitest';
import { createLogger } from '../lib/log.js';
import { waitFor } from '../lib/testing/wait.js';
import { UdpListener } from './udp-listener.js';

const log = createLogger('silent');

function send(type: 'udp4' | 'udp6', address: string, port: number, packet: Buffer) {
  const socket = dgram.createSocket(type);
  return new Promise<void>((resolve, reject) =>
    socket.send(packet, port, address, (err) => {
      socket.close();
      if (err) reject(err);
      else resolve();
    }),
  );
}

test('0.0.0.0 listens on IPv4 and IPv6 on one port, with a large receive buffer', async () => {
  const got: string[] = [];
  const listener = new UdpListener(
    { host: '0.0.0.0', port: 0, rcvbuf: 8 * 1024 * 1024 },
    (p) => got.push(p.toString()),
    log,
  );
  await listener.start();
  try {
    expect(listener.addresses.map((a) => a.family).sort()).toEqual(['IPv4', 'IPv6']);
    expect(new Set(listener.addresses.map((a) => a.port)).size).toBe(1);
    for (const a of listener.addresses) expect(a.rcvbuf).toBeGreaterThanOrEqual(1024 * 1024);
    await send('udp4', '127.0.0.1', listener.port, Buffer.from('v4'));
    await send('udp6', '::1', listener.port, Buffer.from('v6'));
    await waitFor(() => got.length === 2, 5000, 10);
    expect(got.sort()).toEqual(['v4', 'v6']);
  } finally {
    await listener.stop();
  }
});

test('packets up to 64 KiB arrive whole; with a bounded queue every packet is consumed or counted as dropped', async () => {
  const sizes: number[] = [];
  const listener = new UdpListener(
    { host: '::1', port: 0, rcvbuf: 8 * 1024 * 1024, maxQueue: 3, batch: 1 },
    (p) => sizes.push(p.length),
    log,
  );
  await listener.start();
  try {
    await send('udp6', '::1', listener.port, Buffer.alloc(65_000, 1));
    await waitFor(() => sizes.length === 1, 5000, 10);
    expect(sizes).toEqual([65_000]);
    // ten packets in one burst, while the consumer gets no turn: three fit in the queue
    const socket = dgram.createSocket('udp6');
    await new Promise<void>((resolve) => {
      let n = 0;
      for (let i = 0; i < 10; i++)
        socket.send(Buffer.from([i]), listener.port, '::1', () => ++n === 10 && resolve());
    });
    socket.close();
    await waitFor(() => listener.stats().packets === 11, 5000, 10);
    await waitFor(() => listener.stats().queued === 0, 5000, 10);
    const { queueDropped } = listener.stats();
    expect(sizes.length - 1 + queueDropped).toBe(10);
  } finally {
    await listener.stop();
  }
});

test('datagrams the kernel drops while herd is busy are counted (/proc/net/udp), with every sender address', async () => {
  const sources = new Set<string>();
  const listener = new UdpListener(
    { host: '127.0.0.1', port: 0, rcvbuf: 4096 },
    (_p, source) => sources.add(source),
    log,
  );
  await listener.start();
  try {
    expect(listener.kernelStats()).toEqual({ drops: 0, receiveQueueBytes: 0 });
    // Another process floods the port while this one is blocked in spawnSync: the small buffer overflows.
    const SENT = 2000;
    const flood = `const s=require('dgram').createSocket('udp4');let n=0;const b=Buffer.alloc(512,7);
      const next=()=>{if(n===${SENT})return s.close();n++;s.send(b,${listener.port},'127.0.0.1',next)};next();`;
    const r = spawnSync(process.execPath, ['-e', flood], { timeout: 30_000 });
    expect(r.status).toBe(0);
    await waitFor(() => listener.kernelStats()?.receiveQueueBytes === 0, 5000, 10);
    await waitFor(() => listener.stats().packets + (listener.kernelStats()?.drops ?? 0) === SENT, 5000, 10);
    const { drops } = listener.kernelStats()!;
    expect(drops).toBeGreaterThan(0);
    expect(listener.stats().packets + drops).toBe(SENT);
    expect(listener.stats().queueDropped).toBe(0);
    expect([...sources]).toEqual(['127.0.0.1']);
  } finally {
    await listener.stop();
  }
});
