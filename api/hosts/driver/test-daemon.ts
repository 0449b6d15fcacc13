import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Logger } from '../../../lib/log.js';
import { type LocalDaemon, startLocalDaemon, testUriThroughDaemon } from '../../../libvirt/local-daemon.js';
import { SAFE_PATH_RE } from '../../../libvirt/uri.js';

/**
 * Where herd's `test:///…` hosts live. libvirt's test driver runs inside a libvirt client, and herd's client speaks
 * the RPC protocol, so a test host is reached through a libvirtd: `test:///X` is opened as
 * `test+unix:///X?socket=S` (the stored URI stays `test:///X`). S is `HERD_LIBVIRT_TEST_SOCKET` when set (the
 * test suite shares one daemon between its files and the herd processes they start); otherwise herd starts a
 * libvirtd of its own serving the test driver only (libvirt/local-daemon.ts), once per process, in a directory it
 * creates under the system's temporary directory, and stops it when it stops (or dies).
 */
let daemon: Promise<LocalDaemon> | undefined;

/** The URI herd connects to for `uri`: a `test:///…` URI goes through a libvirtd; others are unchanged. */
export async function connectUri(uri: string, log: Logger): Promise<string> {
  if (!uri.startsWith('test:')) return uri;
  return testUriThroughDaemon(uri, await testDriverSocket(log));
}

async function testDriverSocket(log: Logger): Promise<string> {
  const fromEnv = process.env.HERD_LIBVIRT_TEST_SOCKET;
  if (fromEnv) {
    if (!SAFE_PATH_RE.test(fromEnv)) {
      throw new Error(`HERD_LIBVIRT_TEST_SOCKET must be an absolute path of plain characters: ${fromEnv}`);
    }
    return fromEnv;
  }
  daemon ??= startOwnDaemon(log);
  return (await daemon).socket;
}

async function startOwnDaemon(log: Logger): Promise<LocalDaemon> {
  const dir = await mkdtemp(path.join(tmpdir(), 'herd-libvirtd-'));
  try {
    const started = await startLocalDaemon(dir);
    // A herd that exits without stopping (process.exit) still ends its daemon; one killed outright ends it by
    // the daemon's parent-death signal.
    const onExit = () => {
      try {
        process.kill(started.pid, 'SIGTERM');
      } catch {}
      rmSync(dir, { recursive: true, force: true });
    };
    process.once('exit', onExit);
    log.info({ socket: started.socket, pid: started.pid }, "started a libvirtd for the test driver's hosts");
    return {
      ...started,
      async stop() {
        process.off('exit', onExit);
        await started.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    daemon = undefined;
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** The pid of the libvirtd herd started for its test hosts, if it did. */
export async function ownTestDaemonPid(): Promise<number | undefined> {
  return (await daemon?.catch(() => undefined))?.pid;
}

/** Stops the libvirtd herd started for its test hosts, if it did. */
export async function stopTestDaemon(): Promise<void> {
  const running = daemon;
  daemon = undefined;
  await (await running?.catch(() => undefined))?.stop();
}
