import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { access, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../embedded-postgres.js';
import { type Daemon, startDaemon } from './daemon.js';

const run = promisify(execFile);
const GiB = 1024 ** 3;

/**
 * A test's own iSCSI target: Debian's `tgtd` (package `tgt`) on 127.0.0.1 and a free port, one target with
 * file-backed (sparse) LUNs and CHAP. Its control socket lives in its own temporary directory
 * (`TGT_IPC_SOCKET`, which tgtd and tgtadm both read), so it runs beside the machine's tgtd, if any.
 */
export interface Tgtd {
  portal: string;
  port: number;
  iqn: string;
  chapUsername: string;
  chapSecret: string;
  /** What herd's iSCSI pool takes to reach this target: portal, port, IQN and CHAP credentials. */
  poolFields(): { portal: string; port: number; targetIqn: string; chapUsername: string; chapSecret: string };
  /** Adds a LUN (its number, from 1) backed by a new sparse file of `sizeGiB`. */
  addLun(lun: number, sizeGiB: number): Promise<void>;
  stop(): Promise<void>;
}

/** Why tgtd cannot run here, or null when it can. */
export async function tgtdMissing(): Promise<string | null> {
  return access('/usr/sbin/tgtd').then(
    () => null,
    () => 'tgtd is not installed (apt-get install tgt)',
  );
}

/**
 * Starts the target; by default with a fresh IQN, LUN 1 of 1 GiB and LUN 2 of 2 GiB (`luns`: their sizes in GiB,
 * LUN 1 first) and CHAP user `herd-initiator` with a fresh secret.
 */
export async function startTgtd(
  options: { iqn?: string; luns?: number[]; chapUsername?: string; chapSecret?: string } = {},
): Promise<Tgtd> {
  const iqn = options.iqn ?? `iqn.2026-12.org.herd.test:${randomUUID().slice(0, 8)}`;
  const chapUsername = options.chapUsername ?? 'herd-initiator';
  const chapSecret = options.chapSecret ?? `s3cr3t-${randomUUID().slice(0, 12)}`;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'herd-tgtd-'));
  const port = await freePort();
  const env = { ...process.env, TGT_IPC_SOCKET: path.join(dir, 'socket') };
  const daemon: Daemon = startDaemon(
    '/usr/sbin/tgtd',
    ['-f', '-C', '0', '--iscsi', `portal=127.0.0.1:${port}`],
    env,
  );
  const tgtadm = async (...args: string[]) => {
    const { stdout } = await run('tgtadm', ['-C', '0', '--lld', 'iscsi', ...args], { env, timeout: 30_000 });
    return stdout;
  };
  // tgtd ignores SIGTERM: it leaves when asked over its socket, once it has no target (else SIGKILL, by
  // Daemon.stop after 5 s).
  const stop = async () => {
    if (daemon.child.exitCode === null) {
      const exited = new Promise((resolve) => daemon.child.once('exit', resolve));
      const asked = await tgtadm('--mode', 'target', '--op', 'delete', '--force', '--tid', '1')
        .catch(() => undefined)
        .then(() => tgtadm('--mode', 'system', '--op', 'delete'))
        .then(
          () => true,
          () => false,
        );
      if (asked) await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    }
    await daemon.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const started = Date.now();
    for (;;) {
      if (daemon.child.exitCode !== null) throw new Error(`tgtd exited: ${daemon.stderr()}`);
      if (
        await tgtadm('--mode', 'target', '--op', 'show').then(
          () => true,
          () => false,
        )
      )
        break;
      if (Date.now() - started > 20_000) throw new Error(`tgtd did not answer: ${daemon.stderr()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await tgtadm('--mode', 'target', '--op', 'new', '--tid', '1', '--targetname', iqn);
    const addLun = async (lun: number, sizeGiB: number) => {
      const file = path.join(dir, `lun${lun}.img`);
      await writeFile(file, '', { mode: 0o600 });
      await truncate(file, Math.round(sizeGiB * GiB));
      await tgtadm(
        '--mode',
        'logicalunit',
        '--op',
        'new',
        '--tid',
        '1',
        '--lun',
        String(lun),
        '--backing-store',
        file,
      );
    };
    for (const [i, sizeGiB] of (options.luns ?? [1, 2]).entries()) await addLun(i + 1, sizeGiB);
    // The secret travels as an argument to this process only (a test's throwaway credential).
    await tgtadm('--mode', 'account', '--op', 'new', '--user', chapUsername, '--password', chapSecret);
    await tgtadm('--mode', 'account', '--op', 'bind', '--tid', '1', '--user', chapUsername);
    await tgtadm('--mode', 'target', '--op', 'bind', '--tid', '1', '--initiator-address', 'ALL');
    const portal = '127.0.0.1';
    return {
      portal,
      port,
      iqn,
      chapUsername,
      chapSecret,
      poolFields: () => ({ portal, port, targetIqn: iqn, chapUsername, chapSecret }),
      addLun,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
