import { api, rememberCsrf } from './api.js';
import { fill, h, toast } from './dom.js';
import { connectLive, disconnectLive, onLive } from './live.js';
import { navTree } from './nav.js';
import type { Page } from './page.js';
import { adminPage } from './pages/admin.js';
import { alertCount, alertsPage } from './pages/alerts.js';
import { consolePage } from './pages/console.js';
import { homePage } from './pages/home.js';
import { hostPage } from './pages/host.js';
import { loginPage, rememberLogout } from './pages/login.js';
import { poolPage } from './pages/pool.js';
import { searchPage } from './pages/search.js';
import { storagePage } from './pages/storage.js';
import { vmPage } from './pages/vm.js';
import { clearState, followLive, loadAll, state } from './state.js';
import type { Me } from './types.js';

const ROUTES: Array<[RegExp, Page]> = [
  [/^\/?$/, homePage],
  [/^\/pool\/(\d+)$/, poolPage],
  [/^\/host\/(\d+)$/, hostPage],
  [/^\/vm\/(\d+)$/, vmPage],
  [/^\/storage\/(\d+)$/, storagePage],
  [/^\/vm\/(\d+)\/console$/, consolePage],
  [/^\/search$/, searchPage],
  [/^\/alerts$/, alertsPage],
  [/^\/admin(?:\/([a-z-]+))?$/, adminPage],
];

const root = document.getElementById('root')!;
let leave: (() => void) | undefined;
let shell: { main: HTMLElement; dispose(): void } | undefined;

async function route(): Promise<void> {
  leave?.();
  leave = undefined;
  if (!state.me) return showLogin();
  shell ??= layout(state.me);
  const [path, search = ''] = location.hash.replace(/^#/, '').split('?');
  const match = ROUTES.map(([re, page]) => [re.exec(path), page] as const).find(([m]) => m);
  const main = shell.main;
  main.replaceChildren();
  document.body.classList.remove('nav-open');
  if (!match) {
    fill(
      main,
      h('h1', null, 'Not found'),
      h('p', null, 'No such page. ', h('a', { href: '#/' }, 'Back to the overview')),
    );
    return;
  }
  const [m, page] = match;
  try {
    leave = (await page(main, m!.slice(1), new URLSearchParams(search))) ?? undefined;
  } catch (err) {
    fill(main, h('h1', null, 'Not available'), h('p', { role: 'alert' }, (err as Error).message));
  }
  main.focus({ preventScroll: true });
}

function layout(me: Me): { main: HTMLElement; dispose(): void } {
  const tree = navTree();
  const alerts = alertCount();
  const search = h('input', {
    type: 'search',
    name: 'q',
    placeholder: 'Search pools, hosts, VMs',
    'aria-label': 'Search',
  });
  const main = h('main', { id: 'main', tabindex: '-1' });
  fill(
    root,
    h(
      'a',
      {
        class: 'skip',
        href: '#main',
        onclick: (e: Event) => {
          e.preventDefault();
          main.focus();
        },
      },
      'Skip to content',
    ),
    h(
      'header',
      { class: 'top' },
      h(
        'button',
        {
          type: 'button',
          class: 'menu',
          'aria-label': 'Navigation',
          onclick: () => document.body.classList.toggle('nav-open'),
        },
        '☰',
      ),
      h('a', { class: 'brand', href: '#/' }, 'herd'),
      h(
        'form',
        {
          class: 'search',
          role: 'search',
          onsubmit: (e: Event) => {
            e.preventDefault();
            location.hash = `#/search?q=${encodeURIComponent(search.value)}`;
          },
        },
        search,
      ),
      alerts.el,
      h('span', { id: 'live-status', class: 'live off', 'aria-live': 'polite' }, 'connecting'),
      me.isSuperAdmin && h('a', { href: '#/admin', class: 'admin-link' }, 'Admin'),
      h('span', { class: 'who' }, me.username),
      h('button', { type: 'button', class: 'small', onclick: () => void logout() }, 'Log out'),
    ),
    h('div', { class: 'body' }, h('aside', { class: 'side' }, tree.el), main),
    h('div', { id: 'toasts', class: 'toasts', 'aria-live': 'polite' }),
  );
  return {
    main,
    dispose() {
      tree.dispose();
      alerts.dispose();
    },
  };
}

function showLogin(): void {
  shell?.dispose();
  shell = undefined;
  loginPage(root, async (me) => {
    state.me = me;
    await start();
  });
}

async function start(): Promise<void> {
  await loadAll();
  followLive();
  connectLive();
  await route();
}

async function logout(): Promise<void> {
  await api('DELETE', '/api/v1/session').catch(() => undefined);
  rememberCsrf(null);
  rememberLogout();
  disconnectLive();
  clearState();
  location.hash = '#/';
  showLogin();
}

onLive(
  'alert',
  (e: { transition: string; alert: { ruleName: string; subject: string; severity: string } }) => {
    if (e.transition === 'firing' || e.transition === 'resolved') {
      toast(
        `Alert ${e.transition}: ${e.alert.ruleName} — ${e.alert.subject}`,
        e.transition === 'firing' ? 'error' : 'info',
      );
    }
  },
);
window.addEventListener('hashchange', () => void route());
window.addEventListener('herd:unauthorized', () => {
  if (!state.me) return;
  disconnectLive();
  clearState();
  showLogin();
});

api<Me>('GET', '/api/v1/me').then(
  async (me) => {
    state.me = me;
    await start();
  },
  () => showLogin(),
);
