/**
 * The save directory (HERD_SAVE_DIR) is a path as each host's libvirt sees it. For the hosts whose libvirt
 * runs on herd's own machine (the test driver runs inside herd's process), herd can check it exists, and
 * says so plainly instead of libvirt's bare "open failed: No such file or directory".
 */
import { existsSync } from 'node:fs';
import type { Logger } from '../../lib/log.js';
import type { Database } from '../../schema/db.js';

/** A libvirt URI without a remote host: `test:///default`, `qemu:///system`, `qemu+unix:///session`. */
export function isLocalHostUri(uri: string): boolean {
  try {
    return new URL(uri).host === '';
  } catch {
    return false;
  }
}

/** Why saving on a host at `uri` into `saveDir` cannot work, or undefined when herd sees no reason. */
export function saveDirProblem(uri: string, saveDir: string): string | undefined {
  if (!isLocalHostUri(uri) || existsSync(saveDir)) return undefined;
  return `the save directory ${saveDir} (HERD_SAVE_DIR) does not exist on this machine, where ${uri} keeps its saved VMs: create it or set HERD_SAVE_DIR`;
}

/** At start: warns once when local hosts are registered and the save directory is missing. */
export async function checkSaveDir(db: Database, saveDir: string, log: Logger): Promise<void> {
  const hosts = await db.selectFrom('hosts').select(['hostname', 'uri']).execute();
  const local = hosts.filter((h) => isLocalHostUri(h.uri));
  if (local.length === 0 || existsSync(saveDir)) return;
  log.warn(
    { saveDir, hosts: local.slice(0, 10).map((h) => h.hostname), localHosts: local.length },
    `save and restore will fail on this machine's hosts: ${saveDirProblem(local[0].uri, saveDir)}`,
  );
}
