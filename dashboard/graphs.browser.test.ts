import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type RunningDemo, startDemo } from '../app/demo.js';
import { CHROMIUM, compileDashboard, demoTestEnv } from '../lib/testing/browser.js';
import { goTo, signIn } from '../lib/testing/dashboard-pages.js';
import { createTestDatabase, testInflux } from '../lib/testing/db.js';

/**
 * Graphs a pool owner can trust, in Debian's chromium against `herd demo` (simulated collectd every 2 s, 15
 * minutes of history): what each graph draws (its vega view's rows and axis labels), the page's layout boxes at
 * 1400 px and 390 px, and an automated WCAG 2 A/AA audit (axe-core) of the pool, host, VM and admin pages, all
 * under herd's Content-Security-Policy (no 'unsafe-eval').
 */
const require = createRequire(import.meta.url);
const AXE = path.join(path.dirname(require.resolve('axe-core')), 'axe.min.js');

let dir: string;
let demo: RunningDemo;
let browser: Browser;
let closeDb: () => Promise<void>;
const pageErrors: string[] = [];

beforeAll(async () => {
  compileDashboard();
  dir = await mkdtemp(path.join(os.tmpdir(), 'herd-graphs-'));
  const database = await createTestDatabase();
  closeDb = database.close;
  const influx = testInflux();
  demo = await startDemo({
    env: demoTestEnv(dir, database.url, influx),
    collectd: 'simulated',
    intervalSeconds: 2,
    historySeconds: 900,
  });
  browser = await chromium.launch(CHROMIUM);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await demo?.stop();
  await closeDb?.();
  await rm(dir, { recursive: true, force: true });
});

function password(username: string): string {
  return demo.logins.find((l) => l.username === username)!.password;
}

function loggedIn(username: string, viewport = { width: 1400, height: 900 }): Promise<Page> {
  return signIn(
    browser,
    demo.url,
    { username, password: password(username) },
    { viewport, errors: pageErrors },
  );
}

interface Row {
  t: number;
  line: string;
  kind: string;
  value: number | null;
}

interface Drawn {
  rows: Row[];
  /** The time axis' labels, left to right. */
  labels: string[];
  note: string;
}

/** What the graph of `metric` on the page draws, once drawn. */
async function drawn(page: Page, metric: string): Promise<Drawn> {
  const figure = page.locator(`figure.graph[data-metric="${metric}"]`);
  await figure.locator('svg .mark-line path').first().waitFor({ state: 'attached', timeout: 30_000 });
  return figure.evaluate((el) => {
    const view = (el.querySelector('.vega') as HTMLElement & { vegaView?: { data(n: string): unknown[] } })
      .vegaView;
    const axes = [...el.querySelectorAll('svg g.role-axis')];
    // The time axis: the one whose labels read as times or dates.
    const labels = axes
      .map((a) => [...a.querySelectorAll('.role-axis-label text')].map((t) => t.textContent ?? ''))
      .find((ls) => ls.length > 0 && ls.every((l) => /\d:\d\d|[A-Z][a-z]{2} \d\d/.test(l)));
    return {
      rows: (view?.data('source_0') ?? []) as Row[],
      labels: labels ?? [],
      note: el.querySelector('.graph-note')?.textContent ?? '',
    };
  });
}

const median = (values: number[]) => {
  const s = [...values].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : 0;
};

/** Every line's bucket averages, oldest first, gaps (null) kept. */
function lines(rows: Row[]): Map<string, Array<number | null>> {
  const out = new Map<string, Array<number | null>>();
  for (const r of [...rows].sort((a, b) => a.t - b.t)) {
    if (r.kind !== 'average') continue;
    out.set(r.line, [...(out.get(r.line) ?? []), r.value]);
  }
  return out;
}

describe('what the graphs draw', () => {
  const PAGES: Array<[string, string[]]> = [
    ['Rack A', ['cpu', 'memory', 'load', 'network', 'disk']],
    ['rack-a-01', ['cpu', 'memory', 'load', 'network', 'disk']],
    ['web-1', ['cpu', 'memory', 'network', 'disk']],
  ];

  test.each(PAGES)(
    '%s: no cliff at now, no ramp from zero, distinct time labels, one unit',
    async (name, metrics) => {
      const page = await loggedIn('carol');
      // The answers the graphs were drawn from: the newest bucket each names as still filling.
      const partialFrom = new Map<string, number>();
      page.on('response', async (res) => {
        const url = new URL(res.url());
        if (url.pathname !== '/api/v1/metrics' || !res.ok()) return;
        const body = (await res.json().catch(() => null)) as { partialFrom?: number } | null;
        if (body?.partialFrom !== undefined)
          partialFrom.set(url.searchParams.get('metric') ?? '', body.partialFrom);
      });
      await goTo(page, name);
      for (const metric of metrics) {
        const { rows, labels, note } = await drawn(page, metric);
        const context = `${name} ${metric}: ${JSON.stringify(rows.slice(-8))}`;
        expect(rows.length, context).toBeGreaterThan(10);
        // The bucket still filling is not drawn.
        const cut = partialFrom.get(metric);
        expect(cut, `${name} ${metric}: partialFrom`).toBeDefined();
        expect(Math.max(...rows.map((r) => r.t)), context).toBeLessThan(cut! * 1000);
        for (const [line, values] of lines(rows)) {
          const known = values.filter((v): v is number => v !== null);
          const typical = median(known);
          if (!(typical > 0)) continue;
          // No cliff: the newest drawn bucket is of the same order as the line's typical value.
          expect(known.at(-1)!, `${context} ${line} newest`).toBeGreaterThan(typical / 3);
          // No ramp from zero: a line's first point is not a zero where the line is not.
          expect(known[0], `${context} ${line} first`).toBeGreaterThan(0);
        }
        // Ticks chosen for the range: never two equal labels side by side.
        expect(labels.length, `${name} ${metric} labels`).toBeGreaterThanOrEqual(2);
        for (let i = 1; i < labels.length; i++) expect(labels[i], labels.join(' | ')).not.toBe(labels[i - 1]);
        // Over the last hour, the labels read hours and minutes.
        expect(labels[0]).toMatch(/^\d\d:\d\d/);
        // One unit per graph, named once in its note.
        if (metric === 'network' || metric === 'disk') expect(note).toMatch(/ · (|K|M|G)iB\/s/);
      }
      // Drawn under herd's Content-Security-Policy, which has no 'unsafe-eval': nothing refused, nothing thrown.
      expect(pageErrors).toEqual([]);
      await page.close();
    },
  );
});

test('the open graphs extend with the live pushes; the live memory bar is of the inventory memory', async () => {
  const page = await loggedIn('carol');
  await goTo(page, 'rack-a-01');
  // rack-a-01 has 64 GiB: its figures (from the same model) are drawn against that, not against used + free.
  await expect
    .poll(() => page.locator('.live-figures').textContent(), { timeout: 30_000 })
    .toMatch(/ of 64\.0 GiB/);
  const first = await drawn(page, 'load');
  const newest = (rows: Row[]) => Math.max(...rows.map((r) => r.t));
  // A push about this host, a bucket after the graphs were drawn, loads them again (not the 15 s timer).
  await page.locator('section.graphs[data-loaded-by="push"]').waitFor({ state: 'attached', timeout: 30_000 });
  await expect
    .poll(async () => newest((await drawn(page, 'load')).rows), { timeout: 30_000 })
    .toBeGreaterThan(newest(first.rows));
  expect(pageErrors).toEqual([]);
  await page.close();
});

describe('layout', () => {
  /** Where the side column is, against the page (document coordinates), and what is drawn at its foot. */
  const side = (page: Page) =>
    page.evaluate(() => {
      const aside = document.querySelector('aside.side') as HTMLElement;
      const box = aside.getBoundingClientRect();
      const foot = document.elementFromPoint(box.left + 5, window.innerHeight - 3);
      const main = document.querySelector('main') as HTMLElement;
      main.focus();
      return {
        top: box.top + window.scrollY,
        bottom: box.bottom + window.scrollY,
        viewportBottom: box.bottom,
        page: document.documentElement.scrollHeight,
        header: (document.querySelector('header.top') as HTMLElement).getBoundingClientRect().bottom,
        background: getComputedStyle(aside).backgroundColor,
        footInSide: aside.contains(foot),
        mainOutline: getComputedStyle(main).outlineStyle,
        viewport: window.innerHeight,
      };
    });

  test('desktop (1400 px): the side column runs the whole height of a long page, with no stray rule', async () => {
    const page = await loggedIn('carol', { width: 1400, height: 900 });
    await goTo(page, 'Rack A');
    await page
      .locator('figure.graph svg .mark-line path')
      .first()
      .waitFor({ state: 'attached', timeout: 30_000 });
    const top = await side(page);
    expect(top.page, 'a long page').toBeGreaterThan(1.5 * top.viewport);
    expect(top.top).toBeLessThanOrEqual(top.header + 1);
    expect(top.bottom, JSON.stringify(top)).toBeGreaterThanOrEqual(top.page - 1);
    expect(top.background).not.toBe('rgba(0, 0, 0, 0)');
    expect(top.footInSide).toBe(true);
    // main takes focus on navigation: no focus ring drawn around the page's content.
    expect(top.mainOutline).toBe('none');
    await page.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
    const bottom = await side(page);
    expect(bottom.footInSide, JSON.stringify(bottom)).toBe(true);
    // The tree stays in view.
    expect(await page.locator('nav.tree a', { hasText: 'Rack A' }).isVisible()).toBe(true);
    await page.close();
  });

  test('phone (390 px): the tree slides in over the whole height', async () => {
    const page = await loggedIn('carol', { width: 390, height: 844 });
    await page.click('button.menu');
    await goTo(page, 'Rack A');
    await page
      .locator('figure.graph svg .mark-line path')
      .first()
      .waitFor({ state: 'attached', timeout: 30_000 });
    if (!(await page.evaluate(() => document.body.classList.contains('nav-open'))))
      await page.click('button.menu');
    await page.waitForFunction(
      () => getComputedStyle(document.querySelector('aside.side')!).transform === 'none',
    );
    for (const scroll of ['top', 'bottom']) {
      if (scroll === 'bottom')
        await page.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
      const box = await side(page);
      expect(box.viewportBottom, `${scroll}: ${JSON.stringify(box)}`).toBeGreaterThanOrEqual(
        box.viewport - 1,
      );
      expect(box.footInSide, scroll).toBe(true);
    }
    // Nothing wider than the phone: no sideways scrolling.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await page.close();
  });
});

describe('accessibility', () => {
  test.each([
    ['pool', 'Rack A'],
    ['host', 'rack-a-01'],
    ['VM', 'web-1'],
    ['admin', null],
  ])('the %s page passes an automated WCAG 2 A/AA audit (axe-core)', async (_kind, name) => {
    const page = await loggedIn('admin');
    if (name === null) {
      await page.click('a.admin-link');
      await page.locator('main table').first().waitFor();
    } else {
      await goTo(page, name);
      await page
        .locator('figure.graph svg .mark-line path')
        .first()
        .waitFor({ state: 'attached', timeout: 30_000 });
    }
    // axe-core evaluated in the page through the devtools protocol (the page's CSP allows no inline script).
    await page.evaluate(await readFile(AXE, 'utf8'));
    const violations = await page.evaluate(async () => {
      const axe = (window as unknown as { axe: { run(o: object): Promise<{ violations: AxeViolation[] }> } })
        .axe;
      type AxeViolation = { id: string; nodes: Array<{ target: string[]; failureSummary: string }> };
      const result = await axe.run({ runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] } });
      return result.violations.map((v) => ({
        id: v.id,
        nodes: v.nodes.slice(0, 5).map((n) => `${n.target.join(' ')}: ${n.failureSummary}`),
      }));
    });
    expect(violations).toEqual([]);
    await page.close();
  });
});
