import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChannelRow } from '../alerts.repository.js';
import type { NotificationPayload } from './payload.js';
import { DeliveryError } from './sender.js';
import { createWebhookSender } from './webhook-sender.js';
import { WebhookTargets } from './webhook-targets.js';

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

test('addresses: loopback, link-local, metadata and unspecified refused (IPv4-mapped too); the allow-list lets through', () => {
  const targets = new WebhookTargets();
  for (const a of [
    '127.0.0.1',
    '127.9.9.9',
    '169.254.169.254',
    '::1',
    '::ffff:127.0.0.1',
    'fe80::1',
    '0.0.0.0',
    'fd00:ec2::254',
  ])
    expect(targets.refused(a), a).toContain('refused for webhooks');
  for (const a of ['10.0.0.1', '192.168.1.10', '203.0.113.5', '2001:db8::1'])
    expect(targets.refused(a), a).toBeUndefined();
  const allowing = new WebhookTargets(['127.0.0.1', '169.254.0.0/16']);
  expect(allowing.refused('127.0.0.1')).toBeUndefined();
  expect(allowing.refused('169.254.1.1')).toBeUndefined();
  expect(allowing.refused('127.0.0.2')).toContain('refused');
  expect(() => new WebhookTargets(['not-an-address'])).toThrow(/HERD_WEBHOOK_ALLOW/);
});

test('a name that resolves to loopback is refused by the lookup the connection uses', async () => {
  const targets = new WebhookTargets();
  const looked = await new Promise<NodeJS.ErrnoException | null>((resolve) =>
    targets.lookup('localhost', { all: true }, (err) => resolve(err)),
  );
  expect(looked?.code).toBe('EREFUSEDTARGET');
  expect(looked?.message).toContain('refused for webhooks');
  const allowed = await new Promise<unknown>((resolve) =>
    new WebhookTargets(['127.0.0.1', '::1']).lookup('localhost', { all: true }, (err, address) =>
      resolve(err ?? address),
    ),
  );
  expect(allowed).not.toBeInstanceOf(Error);
});

test('a refused target fails for good and nothing is sent; an allowed one is delivered to', async () => {
  const refused = createWebhookSender(new WebhookTargets()).send;
  for (const host of ['localhost', '127.0.0.1']) {
    const err = await refused(channel(`http://${host}:${port}/hook`), payload, { attempt: 1 } as never).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(DeliveryError);
    expect(err.message).toContain('refused for webhooks');
    expect((err as DeliveryError).retryable).toBe(false);
  }
  expect(received).toBe(0);
  const allowed = createWebhookSender(new WebhookTargets(['127.0.0.1'])).send;
  expect(await allowed(channel(`http://127.0.0.1:${port}/hook`), payload, { attempt: 1 } as never)).toEqual({
    status: 204,
  });
  expect(received).toBe(1);
});
