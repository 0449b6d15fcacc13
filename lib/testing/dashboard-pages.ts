import type { Browser, Page } from 'playwright-core';

export interface SignInOptions {
  viewport?: { width: number; height: number };
  /** Where the page's script errors and what its Content-Security-Policy blocks are noted (`who: message`). */
  errors?: string[];
  who?: string;
}

/** A browser page signed in to herd's dashboard at `url` through its login form, the live feed connected. */
export async function signIn(
  browser: Browser,
  url: string,
  login: { username: string; password: string },
  options: SignInOptions = {},
): Promise<Page> {
  const page = await browser.newPage({ viewport: options.viewport ?? { width: 1400, height: 1000 } });
  const errors = options.errors;
  if (errors) watchErrors(page, errors, options.who ?? login.username);
  await page.goto(`${url}/`);
  await page.fill('#username', login.username);
  await page.fill('#password', login.password);
  await page.click('button[type=submit]');
  await page.waitForSelector('nav.tree a');
  await page.waitForSelector('#live-status.on');
  return page;
}

/** Script errors of the page, and what its Content-Security-Policy blocks (told on the console, not thrown). */
export function watchErrors(page: Page, errors: string[], who: string): void {
  page.on('pageerror', (err) => errors.push(`${who}: ${err.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|unsafe-eval/i.test(m.text()))
      errors.push(`${who}: ${m.text()}`);
  });
}

/** Every name in the navigation tree, all pools opened. */
export async function treeNames(page: Page): Promise<string[]> {
  for (;;) {
    const closed = page.locator('nav.tree button.toggle[aria-expanded="false"]:not([disabled])');
    if ((await closed.count()) === 0) break;
    await closed.first().click();
  }
  return page.locator('nav.tree a .name').allTextContents();
}

/** Goes to a pool, host or VM through the navigation tree. */
export async function goTo(page: Page, name: string): Promise<void> {
  await treeNames(page);
  await page
    .locator('nav.tree a', { has: page.locator('.name', { hasText: new RegExp(`^${name}$`) }) })
    .click();
}

/** Waits until the page's graph of `metric` has drawn a line. */
export async function graphDrawn(page: Page, metric: string, timeout = 30_000): Promise<void> {
  await page.locator(`figure[data-metric="${metric}"] svg .mark-line path`).first().waitFor({ timeout });
}
