import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createLogger } from '../../../lib/log.js';
import { createTestDatabase } from '../../../lib/testing/db.js';
import { insertVm } from '../../../lib/testing/fleet.js';
import { createPool, createUserWithToken } from '../../../lib/testing/users.js';
import type { DatabaseHandle } from '../../../schema/db.js';
import { insertChannel } from '../alerts.repository.js';
import { startAlerting } from '../start-alerting.js';
import { ManualClock } from '../test-support.js';

/** The built-in quota rule fires and is mailed through nodemailer to a real SMTP server on loopback. */

let database: DatabaseHandle;
let smtp: SMTPServer;
let smtpPort: number;
let smtpConnections = 0;
const mails: Array<{ from: string; to: string[]; data: string; user?: string }> = [];

beforeAll(async () => {
  database = await createTestDatabase();
  smtp = new SMTPServer({
    secure: false,
    disabledCommands: ['STARTTLS'],
    authOptional: true,
    onConnect(_session, callback) {
      smtpConnections++;
      callback();
    },
    allowInsecureAuth: true,
    onAuth(auth, _session, callback) {
      if (auth.username === 'herd' && auth.password === 'smtp-pass') callback(null, { user: auth.username });
      else callback(new Error('bad credentials'));
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        mails.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          data: Buffer.concat(chunks).toString('utf8'),
          user: session.user as string | undefined,
        });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
  smtpPort = (smtp.server.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise<void>((resolve) => smtp.close(() => resolve()));
  await database.close();
});

/** A pool whose owner uses all of a vCPU quota, so the built-in quota rule fires for it. */
async function poolAtQuota(name: string, owner: string): Promise<number> {
  const db = database.db;
  const user = await createUserWithToken(db, { username: owner });
  const poolId = await createPool(db, { name, kind: 'vm', parentId: 1 });
  await db.insertInto('quotas').values({ pool_id: poolId, user_id: user.id, vcpus: 4 }).execute();
  await insertVm(db, { poolId, ownerId: user.id, state: 'running', vcpus: 4 });
  return poolId;
}

/** One evaluation round, then the notifications due after the built-in rule's group wait are sent. */
async function evaluateAndDispatch(webhookAllow: string[]) {
  const clock = new ManualClock();
  const alerting = await startAlerting({
    db: database.db,
    log: createLogger('silent'),
    clock: clock.read,
    autoRun: false,
    webhookAllow,
  });
  try {
    await alerting.evaluate();
    clock.advance(30);
    return await alerting.dispatch();
  } finally {
    await alerting.stop();
  }
}

test('an alert is mailed over SMTP (with authentication) to the channel recipients', async () => {
  const db = database.db;
  const poolId = await poolAtQuota('mail-pool', 'mailer-owner');
  await insertChannel(db, {
    name: 'ops-mail',
    type: 'email',
    pool_id: poolId,
    config: JSON.stringify({
      to: ['ops@example.test', 'oncall@example.test'],
      from: 'herd@example.test',
      smtp: { host: '127.0.0.1', port: smtpPort, ignoreTLS: true, user: 'herd' },
    }),
    secret: 'smtp-pass',
  });

  // The test's SMTP server is on loopback, which channels may not reach unless allowed.
  expect(await evaluateAndDispatch(['127.0.0.1'])).toMatchObject({ delivered: 1 });

  expect(mails).toHaveLength(1);
  const [mail] = mails;
  expect(mail).toMatchObject({
    from: 'herd@example.test',
    to: ['ops@example.test', 'oncall@example.test'],
    user: 'herd',
  });
  expect(mail.data).toMatch(/^Subject: \[herd\] \[FIRING:1\] Quota above 90 % \(pool mail-pool\)/m);
  const body = mail.data
    .replace(/=\r?\n/g, '')
    .replace(/=([0-9A-F]{2})/g, (_, hex) => String.fromCharCode(Number.parseInt(hex, 16)));
  expect(body).toContain('mailer-owner vcpus in pool mail-pool: usedPercent = 100 (above 90)');
  const row = await db.selectFrom('notifications').select(['status', 'history']).executeTakeFirstOrThrow();
  expect(row.status).toBe('delivered');
  expect((row.history as any[])[0]).toMatchObject({ outcome: 'delivered' });
});

test('a channel whose SMTP server resolves to loopback gets no connection: the notification fails, saying why', async () => {
  const db = database.db;
  const poolId = await poolAtQuota('scan-pool', 'scanner-owner');
  // Written past the API's checks (as a row made before them would be): a literal address and names that
  // resolve to loopback (2130706433 is 127.0.0.1 to getaddrinfo).
  const channels: number[] = [];
  for (const host of ['127.0.0.1', 'LOCALHOST', '2130706433'])
    channels.push(
      await insertChannel(db, {
        name: `scan-${host}`,
        type: 'email',
        pool_id: poolId,
        config: JSON.stringify({ to: ['ops@example.test'], smtp: { host, port: smtpPort, ignoreTLS: true } }),
      }),
    );
  const before = smtpConnections;
  await evaluateAndDispatch([]);
  expect(smtpConnections).toBe(before);
  const rows = await db
    .selectFrom('notifications')
    .select(['channel_id', 'status', 'last_error'])
    .where('channel_id', 'in', channels)
    .execute();
  expect(rows).toHaveLength(3);
  for (const row of rows) {
    expect(row.status).toBe('failed');
    expect(row.last_error).toMatch(
      /^smtp: 127\.0\.0\.1 is a loopback, private, link-local, multicast or reserved address, refused as a target/,
    );
  }
});
