import { ApiError, get } from '../api.js';
import { fill, h } from '../dom.js';
import type { Page } from '../page.js';
import type { Vm } from '../types.js';
import { breadcrumbs } from './common.js';

/** What the console uses of noVNC's RFB client (https://github.com/novnc/noVNC/blob/master/docs/API.md). */
interface Rfb extends EventTarget {
  scaleViewport: boolean;
  focusOnClick: boolean;
  disconnect(): void;
  sendCtrlAltDel(): void;
}
type RfbClass = new (target: HTMLElement, url: string, options?: { wsProtocols?: string[] }) => Rfb;

/** noVNC's RFB client, bundled by herd from the npm package (dashboard/server/novnc-bundle.ts), loaded on first use. */
const NOVNC = '/vendor/novnc-rfb.js';

/** States in which the VM has a screen to show. */
export const CONSOLE_STATES = ['running', 'paused'];

/**
 * The VM's screen in the browser: noVNC over herd's WebSocket proxy (`/api/v1/vms/:id/console`, the session
 * cookie authenticates). herd is asked first with a plain GET (426: the console may be opened), so a refusal is
 * shown with herd's reason rather than as a WebSocket that merely closes.
 */
export const consolePage: Page = async (main, [id]) => {
  const vmId = Number(id);
  const vm = await get<Vm>(`/api/v1/vms/${vmId}`);
  const status = h('p', { class: 'console-status', role: 'status', 'aria-live': 'polite' }, 'Connecting…');
  const screen = h('div', { class: 'console-screen', 'aria-label': `Screen of ${vm.name}` });
  const keys = h('button', { type: 'button', disabled: true }, 'Send Ctrl+Alt+Del');
  fill(
    main,
    breadcrumbs(vm.poolId, vm.name),
    h('h1', null, 'Console of ', h('a', { href: `#/vm/${vmId}` }, vm.name)),
    h('div', { class: 'actions' }, keys),
    status,
    screen,
  );
  const refused = (message: string) => {
    status.classList.add('console-refused');
    fill(status, 'The console cannot be opened: ', message);
  };
  try {
    await get(`/api/v1/vms/${vmId}/console`);
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 426)) {
      refused(err instanceof Error ? err.message : String(err));
      return undefined;
    }
  }
  const RFB = ((await import(NOVNC)) as { default: RfbClass }).default;
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const rfb = new RFB(screen, `${scheme}://${location.host}/api/v1/vms/${vmId}/console`, {
    wsProtocols: ['binary'],
  });
  rfb.scaleViewport = true;
  rfb.addEventListener('connect', () => {
    status.classList.remove('console-refused');
    fill(status, 'Connected to the screen of ', vm.name, '.');
    keys.disabled = false;
  });
  rfb.addEventListener('disconnect', (e) => {
    keys.disabled = true;
    const clean = (e as CustomEvent<{ clean: boolean }>).detail?.clean;
    fill(status, clean ? 'Disconnected.' : 'The connection to the screen was lost.');
  });
  keys.addEventListener('click', () => rfb.sendCtrlAltDel());
  return () => rfb.disconnect();
};
