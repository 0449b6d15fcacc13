/**
 * The screenshots of the README and docs/dashboard.md, taken anew on a fresh `herd demo` with its embedded defaults (its own PostgreSQL,
 * metrics kept there, the demo's simulated hosts and their collectd traffic) in Debian's chromium:
 *
 *   npm run screenshots                 writes docs/screenshots/*.png
 *   npm run screenshots -- /some/dir    writes them there instead
 *
 * The demo runs under a temporary directory and on ports the kernel picks, so it never meets a demo of yours;
 * the directory is removed at the end. The console's screenshot (a real guest's screen) is not among them: it
 * needs a hypervisor, and `HERD_SCREENSHOTS=1 npx vitest run dashboard/console.browser.test.ts` takes it.
 */
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Page } from 'playwright-core';
import { CHROMIUM } from '../lib/testing/browser.js';
import { goTo, graphDrawn, signIn } from '../lib/testing/dashboard-pages.js';
import { startDemo } from './demo.js';

const out = path.resolve(process.argv[2] ?? path.join(import.meta.dirname, '..', 'docs', 'screenshots'));
const WIDE = { width: 1400, height: 1000 };
const PHONE = { width: 390, height: 844 };
/** A live figure pushed since the page opened (a host's or VM's "Now"). */
const LIVE = '.live-figures [role=meter]:not([aria-valuenow="0"])';

const dir = await mkdtemp(path.join(os.tmpdir(), 'herd-screenshots-'));
// Run as root, the embedded PostgreSQL runs as `postgres`, which must reach its data directory in here.
await chmod(dir, 0o755);
await mkdir(out, { recursive: true });
const demo = await startDemo({
  env: {
    ...process.env,
    HERD_DATA_DIR: dir,
    DATABASE_URL: '',
    INFLUX_URL: '',
    HERD_HTTP_PORT: '0',
    HERD_COLLECTD_PORT: '0',
    HERD_LOG_LEVEL: 'error',
  },
});
const browser = await chromium.launch(CHROMIUM);
const errors: string[] = [];
const login = (username: string) => ({
  username,
  password: demo.logins.find((l) => l.username === username)!.password,
});
const shot = async (page: Page, name: string, fullPage = true) => {
  await page.screenshot({ path: path.join(out, `${name}.png`), fullPage });
  console.log(`${name}.png`);
};

/** Waits until herd has heartbeated every host once (the host page says when it last did). */
async function heartbeats(page: Page): Promise<void> {
  await page.waitForFunction(
    async () => {
      const res = await fetch('/api/v1/hosts?limit=1000');
      const { items } = (await res.json()) as { items: Array<{ heartbeatAt: string | null }> };
      return items.length > 0 && items.every((h) => h.heartbeatAt);
    },
    undefined,
    { polling: 500, timeout: 60_000 },
  );
}

try {
  const form = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  await form.goto(`${demo.url}/`);
  await form.waitForSelector('#username');
  await shot(form, 'login');

  const admin = await signIn(browser, demo.url, login('admin'), { viewport: WIDE, errors });
  await admin.waitForSelector('.pool-card');
  await shot(admin, 'overview');
  await goTo(admin, 'Datacenter');
  await graphDrawn(admin, 'cpu');
  await shot(admin, 'pool');
  await heartbeats(admin);
  await goTo(admin, 'rack-a-01');
  await graphDrawn(admin, 'cpu');
  await graphDrawn(admin, 'network');
  await admin.waitForSelector(LIVE, { timeout: 30_000 });
  await shot(admin, 'host');
  await goTo(admin, 'Team Alpha');
  await admin.waitForSelector('table.data td [role=meter]:not([aria-valuenow="0"])', { timeout: 30_000 });
  await graphDrawn(admin, 'cpu');
  await shot(admin, 'vm-pool');
  await goTo(admin, 'web-1');
  await graphDrawn(admin, 'cpu');
  await admin.waitForSelector(LIVE, { timeout: 30_000 });
  await shot(admin, 'vm');
  await admin.goto(`${demo.url}/#/admin/users`);
  await admin.waitForSelector('table.data td');
  await shot(admin, 'admin');

  const phone = await signIn(browser, demo.url, login('carol'), { viewport: PHONE, errors });
  await phone.click('button.menu');
  await goTo(phone, 'Datacenter');
  await phone.waitForSelector('table.data');
  await shot(phone, 'phone', false);
  if (errors.length) throw new Error(`the pages reported errors:\n${errors.join('\n')}`);
} finally {
  await browser.close();
  await demo.stop();
  await rm(dir, { recursive: true, force: true });
}
