import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { OutboundGuard } from '../../../lib/outbound-guard.js';
import type { ChannelRow } from '../alerts.repository.js';
import type { NotificationPayload } from './payload.js';
import { DeliveryError } from './sender.js';
import { createWebhookSender } from './webhook-sender.js';

let server: http.Server;
let port: number;
let received = 0;
beforeAll(async () => {
  server = http.createServer((req, res) => {
    received++;
    req.resume();
    req.on('end', () => res.writeHead(204).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const channel = (url: string) =>
  ({ id: 1, type: 'webhook', config: { url }, secret: 'k' }) as unknown as ChannelRow;
const payload = { notificationId: 7 } as unknown as NotificationPayload;

test('addresses: loopback, private, link-local, multicast, reserved and unspecified refused, in every IPv6 form; the allow-list lets through', () => {
  const targets = new OutboundGuard();
  for (const a of [
    '127.0.0.1',
    '127.9.9.9',
    '169.254.169.254',
    '100.100.100.200',
    '10.0.0.1',
    '172.16.5.4',
    '192.168.1.10',
    '100.64.0.1',
    '224.0.0.1',
    '239.255.255.250',
    '255.255.255.255',
    '0.0.0.0',
    '::',
    '::1',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '::ffff:10.1.2.3',
    '::127.0.0.1',
    '64:ff9b::a9fe:a9fe',
    '2002:7f00:1::',
    'fe80::1',
    'fd00:ec2::254',
    'fc00::5',
    'ff02::1',
  ])
    expect(targets.refused(a), a).toContain('refused as a target');
  for (const a of ['203.0.113.5', '8.8.8.8', '172.32.0.1', '2001:db8::1', '::ffff:8.8.8.8', '2002:808:808::'])
    expect(targets.refused(a), a).toBeUndefined();
  const allowing = new OutboundGuard(['127.0.0.1', '169.254.0.0/16', '10.0.0.0/8']);
  expect(allowing.refused('127.0.0.1')).toBeUndefined();
  expect(allowing.refused('::ffff:127.0.0.1')).toBeUndefined();
  expect(allowing.refused('169.254.1.1')).toBeUndefined();
  expect(allowing.refused('10.9.8.7')).toBeUndefined();
  expect(allowing.refused('127.0.0.2')).toContain('refused');
  expect(() => new OutboundGuard(['not-an-address'])).toThrow(/HERD_WEBHOOK_ALLOW/);
});

test('host names as written: every spelling of localhost and of a loopback address is refused before any lookup', () => {
  const targets = new OutboundGuard();
  for (const host of [
    'localhost',
    'localhost.',
    'LOCALHOST',
    'LocalHost..',
    'a.localhost',
    '[::1]',
    '127.1',
    '0x7f.0.0.1',
    '2130706433',
    '0177.0.0.1',
    ' 127.0.0.1 ',
  ])
    expect(targets.refusedHost(host), host).toContain('refused as a target');
  for (const url of ['http://LOCALHOST./hook', 'http://localhost.:8080/', 'https://2130706433/'])
    expect(targets.refusedUrl(url), url).toContain('refused as a target');
  for (const host of ['smtp.example.test', 'mail.example.com', '203.0.113.5'])
    expect(targets.refusedHost(host), host).toBeUndefined();
});

test('a name that resolves to loopback is refused by the lookup the connection uses', async () => {
  const targets = new OutboundGuard();
  const looked = await new Promise<NodeJS.ErrnoException | null>((resolve) =>
    targets.lookup('localhost', { all: true }, (err) => resolve(err)),
  );
  expect(looked?.code).toBe('EREFUSEDTARGET');
  expect(looked?.message).toContain('refused as a target');
  const allowed = await new Promise<unknown>((resolve) =>
    new OutboundGuard(['127.0.0.1', '::1']).lookup('localhost', { all: true }, (err, address) =>
      resolve(err ?? address),
    ),
  );
  expect(allowed).not.toBeInstanceOf(Error);
});

test('a refused target fails for good and nothing is sent; an allowed one is delivered to', async () => {
  const refused = createWebhookSender(new OutboundGuard()).send;
  for (const host of ['localhost', '127.0.0.1', 'localhost.', 'LOCALHOST']) {
    const err = await refused(channel(`http://${host}:${port}/hook`), payload, { attempt: 1 } as never).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(DeliveryError);
    expect(err.message).toContain('refused as a target');
    expect((err as DeliveryError).retryable).toBe(false);
  }
  expect(received).toBe(0);
  const allowed = createWebhookSender(new OutboundGuard(['127.0.0.1'])).send;
  expect(await allowed(channel(`http://127.0.0.1:${port}/hook`), payload, { attempt: 1 } as never)).toEqual({
    status: 204,
  });
  expect(received).toBe(1);
});
