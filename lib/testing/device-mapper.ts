import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Why LVM logical volumes cannot be made on this machine, or null when they can: LVM activates every LV through
 * the kernel's device-mapper, which `dmsetup version` asks for (a kernel built without it, e.g. a microVM's, has
 * no /dev/mapper/control device behind the node). Creating volume groups works without it; LVs do not.
 */
export async function deviceMapperMissing(): Promise<string | null> {
  try {
    const { stdout } = await run('dmsetup', ['version'], { timeout: 10_000 });
    return /Driver version/.test(stdout) ? null : `dmsetup version shows no kernel driver: ${stdout.trim()}`;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') return 'dmsetup is not installed (apt-get install lvm2)';
    const first = (e.stderr ?? e.message).trim().split('\n')[0];
    return `no device-mapper in this kernel: \`dmsetup version\` fails with "${first}"`;
  }
}
