import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { apiRoutes } from '../api/routes.js';
import { act, addRealHost, createVm, removeDomain } from '../api/vms/testing/real-host.js';
import { createFleet, type Fleet } from '../api/vms/testing/vm-fleet.js';
import { CHROMIUM, compileDashboard } from '../lib/testing/browser.js';
import { signIn } from '../lib/testing/dashboard-pages.js';
import {
  type GuestSignals,
  guestCmdline,
  sharedHypervisor,
  startGuestSignals,
} from '../lib/testing/hypervisor.js';
import { createPool, createUserWithToken, grantRole } from '../lib/testing/users.js';
import { dashboardRoutes } from './server/dashboard.routes.js';

/**
 * The VM console in Debian's chromium: a real guest (the suite's busybox, booted through herd on a real
 * libvirtd) prints a tick a second on its screen; the Console page's noVNC client draws that screen from herd's
 * WebSocket proxy, and it changes. A user who may only view the VM is refused, with herd's reason.
 */
const ROOT = path.resolve(import.meta.dirname, '..');
const hv = sharedHypervisor();
const topic = `consolebrowser-${randomUUID().slice(0, 6)}`;
const PASSWORD = 'console-test-password-1';
let f: Fleet;
let url: string;
let browser: Browser;
let signals: GuestSignals;
let vm: { id: number; uuid: string } | undefined;
const pageErrors: string[] = [];

beforeAll(async () => {
  compileDashboard();
  signals = await startGuestSignals();
  f = await createFleet({ routes: [...apiRoutes, dashboardRoutes] });
  url = await f.t.app.listen({ host: '127.0.0.1', port: 0 });
  const db = f.t.database.db;
  const rack = await createPool(db, { name: `${topic}-rack` });
  const team = await createPool(db, { name: `${topic}-team`, kind: 'vm', parentId: rack });
  // Direct Linux boot is the super-admin's: the operator is one; the watcher may only view the team's VMs.
  const operator = await createUserWithToken(db, {
    username: `${topic}-operator`,
    superAdmin: true,
    password: PASSWORD,
  });
  const watcher = await createUserWithToken(db, { username: `${topic}-watcher`, password: PASSWORD });
  await grantRole(db, team, watcher.id, 'monitor');
  await addRealHost(f, hv.hosts[0].uri, rack);
  await f.worker();
  vm = await createVm(f, operator, {
    name: `${topic}-vm`,
    poolId: team,
    vcpus: 1,
    memoryMiB: 128,
    nics: [{ network: 'user' }],
    linuxBoot: {
      kernel: hv.image.kernel,
      initrd: hv.image.initrd,
      cmdline: guestCmdline({ ready: signals.url(`ready/${topic}`) }),
    },
  });
  await act(f, operator, vm.id, 'start', 60_000);
  await signals.waitFor(`ready/${topic}`, 120_000);
  browser = await chromium.launch(CHROMIUM);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  if (f) await removeDomain(f, hv.hosts[0].uri, vm?.uuid);
  await f?.close();
  await signals?.close();
});

function loggedIn(who: 'operator' | 'watcher'): Promise<Page> {
  const login = { username: `${topic}-${who}`, password: PASSWORD };
  return signIn(browser, url, login, { viewport: { width: 1280, height: 900 }, errors: pageErrors, who });
}

/** The console canvas as PNG data, and how many of its pixels are not black. */
const snapshot = (page: Page) =>
  page.evaluate(() => {
    const canvas = document.querySelector<HTMLCanvasElement>('.console-screen canvas')!;
    const ctx = canvas.getContext('2d')!;
    const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let lit = 0;
    for (let i = 0; i < pixels.length; i += 4) if (pixels[i] + pixels[i + 1] + pixels[i + 2] > 60) lit++;
    return { png: canvas.toDataURL('image/png'), lit, width: canvas.width, height: canvas.height };
  });

describe('the VM console in the browser', () => {
  test('the Console button opens the guest’s screen, and it changes as the guest ticks', async () => {
    const page = await loggedIn('operator');
    await page.goto(`${url}/#/vm/${vm!.id}`);
    await page.click('button[data-action="console"]');
    await page.waitForURL(`**/#/vm/${vm!.id}/console`);
    await page.waitForSelector('.console-status:has-text("Connected")', { timeout: 30_000 });
    await page.waitForFunction(
      () => (document.querySelector<HTMLCanvasElement>('.console-screen canvas')?.width ?? 0) > 0,
    );
    // The first frame may still be arriving: wait until something is drawn.
    await page.waitForFunction(() => {
      const canvas = document.querySelector<HTMLCanvasElement>('.console-screen canvas')!;
      const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
      for (let i = 0; i < data.length; i += 4) if (data[i] + data[i + 1] + data[i + 2] > 60) return true;
      return false;
    });
    const first = await snapshot(page);
    await page.waitForTimeout(3_000);
    const second = await snapshot(page);
    // With HERD_SCREENSHOTS=1 docs/dashboard.md's screenshot of the console is taken again.
    if (process.env.HERD_SCREENSHOTS === '1')
      await page.screenshot({ path: path.join(ROOT, 'docs', 'screenshots', 'console.png') });
    expect(first.width).toBeGreaterThanOrEqual(640);
    expect(first.lit).toBeGreaterThan(100);
    expect(second.lit).toBeGreaterThan(100);
    expect(second.png).not.toBe(first.png);
    await page.close();
    expect(pageErrors).toEqual([]);
  });

  test('a user who may only view the VM is refused, and so is its WebSocket', async () => {
    const page = await loggedIn('watcher');
    await page.goto(`${url}/#/vm/${vm!.id}/console`);
    const status = page.locator('.console-status.console-refused');
    await status.waitFor();
    expect(await status.textContent()).toMatch(/cannot be opened: control on this vm needs a stronger role/);
    expect(await page.locator('.console-screen canvas').count()).toBe(0);
    // Opening the socket by hand gets nowhere either: the handshake is answered 403.
    const outcome = await page.evaluate(
      (id) =>
        new Promise<string>((resolve) => {
          const ws = new WebSocket(`ws://${location.host}/api/v1/vms/${id}/console`, ['binary']);
          ws.binaryType = 'arraybuffer';
          ws.onopen = () => resolve('open');
          ws.onclose = () => resolve('closed');
        }),
      vm!.id,
    );
    expect(outcome).toBe('closed');
    await page.close();
    expect(pageErrors).toEqual([]);
  });
});
