import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { DatabaseHandle } from '../../../lib/db.js';
import { createLogger } from '../../../lib/log.js';
import { createTestDatabase } from '../../../lib/testing/db.js';
import { insertVm } from '../../../lib/testing/fleet.js';
import { createPool, createUserWithToken } from '../../../lib/testing/users.js';
import { insertChannel } from '../alerts.repository.js';
import { startAlerting } from '../start-alerting.js';
import { ManualClock } from '../test-support.js';

/** The built-in quota rule fires and is mailed through nodemailer to a real SMTP server on loopback. */

let database: DatabaseHandle;
let smtp: SMTPServer;
let smtpPort: number;
const mails: Array<{ from: string; to: string[]; data: string; user?: string }> = [];

beforeAll(async () => {
  database = await createTestDatabase();
  smtp = new SMTPServer({
    secure: false,
    disabledCommands: ['STARTTLS'],
    authOptional: true,
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

test('an alert is mailed over SMTP (with authentication) to the channel recipients', async () => {
  const db = database.db;
  const owner = await createUserWithToken(db, { username: 'mailer-owner' });
  const poolId = await createPool(db, { name: 'mail-pool', kind: 'vm', parentId: 1 });
  await db.insertInto('quotas').values({ pool_id: poolId, user_id: owner.id, vcpus: 4 }).execute();
  await insertVm(db, { poolId, ownerId: owner.id, state: 'running', vcpus: 4 });
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

  const clock = new ManualClock();
  const alerting = await startAlerting({
    db,
    log: createLogger('silent'),
    clock: clock.read,
    autoRun: false,
  });
  try {
    await alerting.evaluate();
    clock.advance(30); // the built-in rule's group wait
    expect(await alerting.dispatch()).toMatchObject({ delivered: 1 });
  } finally {
    await alerting.stop();
  }

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
