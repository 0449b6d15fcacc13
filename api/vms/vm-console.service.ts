import { assertVm } from '../access/access.service.js';
import type { AppDeps } from '../app.js';
import type { AuthUser } from '../auth/auth-user.js';
import { parseXml } from '../hosts/driver/domain-xml.js';
import { conflict, HttpError, notFound } from '../http/errors.js';
import { isLocalHostUri } from './save-dir.js';
import { hostUris, vmById } from './vms.repository.js';

type Deps = Pick<AppDeps, 'db' | 'hostConnections'>;

/** States in which a domain has a live display to look at. */
const CONSOLE_STATES = new Set(['running', 'paused', 'stopping', 'suspending', 'resuming']);

/** Where herd reaches a VM's VNC server. */
export interface VncTarget {
  vmId: number;
  host: string;
  port: number;
}

/**
 * The VNC server of a VM's display, for its console: who may control the VM only (404 for a VM the caller may
 * not see, 403 for one it may only view), while it runs on a host. The port is the live domain's
 * (`<graphics type='vnc' port=… listen=…>`, autoport); a server listening on every address is reached at the
 * host's address, one on loopback only from herd's own machine (hosts named `qemu:///…`, `qemu+unix://…`).
 */
export async function consoleTarget(deps: Deps, user: AuthUser, vmId: number): Promise<VncTarget> {
  const vm = await vmById(deps.db, vmId);
  if (!vm) throw notFound('vm');
  await assertVm(deps.db, user, vm, 'control');
  if (!CONSOLE_STATES.has(vm.state) || vm.host_id === null) {
    throw conflict('invalid_state', `VM ${vm.name} (${vm.id}) is ${vm.state}: its console needs it running`, {
      state: vm.state,
    });
  }
  const [host] = await hostUris(deps.db, [vm.host_id]);
  if (!host || !deps.hostConnections) throw notFound('host');
  const driver = await deps.hostConnections.get(host.uri);
  const vnc = vncOf(await driver.domainXml(vm.uuid));
  if (!vnc || vnc.port <= 0) {
    throw conflict('no_console', `VM ${vm.name} (${vm.id}) has no VNC display on ${host.hostname}`);
  }
  return { vmId: vm.id, port: vnc.port, host: vncAddress(vnc.listen, host.uri, host.hostname) };
}

/** The first VNC display of a domain's live XML: its port and listen address. */
export function vncOf(xml: string): { port: number; listen: string | null } | null {
  const graphics = parseXml(xml).domain?.devices?.graphics;
  const all = Array.isArray(graphics) ? graphics : graphics ? [graphics] : [];
  const vnc = all.find((g) => g['@type'] === 'vnc');
  if (!vnc) return null;
  const listen =
    vnc['@listen'] ?? (Array.isArray(vnc.listen) ? vnc.listen[0] : vnc.listen)?.['@address'] ?? null;
  return { port: Number(vnc['@port'] ?? -1), listen };
}

const LOOPBACK = /^(127\.|::1$|localhost$)/;

function vncAddress(listen: string | null, uri: string, hostname: string): string {
  const local = isLocalHostUri(uri);
  const remote = local ? null : new URL(uri).hostname.replace(/^\[|\]$/g, '');
  if (!listen || listen === '0.0.0.0' || listen === '::') return remote ?? '127.0.0.1';
  if (LOOPBACK.test(listen) && remote) {
    throw new HttpError(
      409,
      'console_unreachable',
      `the VNC display listens on ${hostname}'s loopback (${listen}): herd reaches it only for hosts on herd's own machine`,
    );
  }
  return listen;
}
