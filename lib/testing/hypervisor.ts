import { mkdir, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { inject } from 'vitest';
import { buildGuestImage, type GuestImage } from './guest-image.js';
import { probeKvm } from './kvm-probe.js';
import { type Libvirtd, startLibvirtd } from './libvirtd.js';

/** What the suite's global setup shares with every test file: the guest image and two real libvirtds. */
export interface SharedHypervisor {
  image: GuestImage;
  /** Two libvirtd instances with distinct host UUIDs on this machine (live migration between them works). */
  hosts: Array<{ uri: string; socket: string; hostUuid: string; domainType: 'kvm' | 'qemu' }>;
  /** A directory both hosts see at the same path: disks that migrate, saved images. */
  sharedDir: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    hypervisor: SharedHypervisor;
  }
}

/** The UUIDs of the suite's two libvirtds (libvirtd.conf `host_uuid`). */
export const HOST_UUIDS = ['5e0f3c1a-4d2b-4e8f-9a6c-000000000001', '5e0f3c1a-4d2b-4e8f-9a6c-000000000002'];

/** For the global setup: builds the guest once and starts the two libvirtds under `dir`. */
export async function startSharedHypervisor(
  dir: string,
): Promise<{ shared: SharedHypervisor; stop: () => Promise<void> }> {
  await mkdir(dir, { recursive: true });
  const sharedDir = path.join(dir, 'shared');
  await mkdir(sharedDir, { recursive: true });
  const image = await buildGuestImage(dir);
  const kvm = await probeKvm(image);
  console.info(`herd tests: guests run under ${kvm.kvm ? 'KVM' : 'TCG (emulation)'}: ${kvm.reason}`);
  const daemons: Libvirtd[] = [];
  try {
    for (const [index, hostUuid] of HOST_UUIDS.entries()) {
      daemons.push(
        await startLibvirtd(path.join(dir, `libvirtd-${index + 1}`), { index, hostUuid, kvm: kvm.kvm }),
      );
    }
  } catch (err) {
    await Promise.all(daemons.map((d) => d.stop()));
    throw err;
  }
  return {
    shared: {
      image,
      hosts: daemons.map((d) => ({
        uri: d.uri,
        socket: d.socket,
        hostUuid: d.hostUuid,
        domainType: d.domainType,
      })),
      sharedDir,
    },
    async stop() {
      await Promise.all(daemons.map((d) => d.stop()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** In a test file: the suite's hypervisor. */
export function sharedHypervisor(): SharedHypervisor {
  return inject('hypervisor');
}

/**
 * The guest's kernel command line: serial console, and `script` (a shell script the guest runs once up, e.g.
 * a CPU-busy loop) passed base64-encoded in `herd.run=`; `installed` is a URL the guest POSTs to once up,
 * `ready` one it GETs once up (see lib/testing/guest-image.ts; the host's loopback is 10.0.2.2 to the guest).
 */
export function guestCmdline(options: { script?: string; installed?: string; ready?: string } = {}): string {
  const parts = ['console=ttyS0', 'quiet', 'panic=-1'];
  if (options.script) parts.push(`herd.run=${Buffer.from(options.script).toString('base64')}`);
  if (options.installed) parts.push(`herd.installed=${options.installed}`);
  if (options.ready) parts.push(`herd.ready=${options.ready}`);
  return parts.join(' ');
}

/** Where a guest on qemu's user network reaches the host's loopback. */
export const HOST_FROM_GUEST = '10.0.2.2';

export interface GuestSignals {
  /** The URL a guest calls for `name` (through qemu's user network). */
  url(name: string): string;
  /** Resolves when a guest has called `name` (at least `times` times in all). */
  waitFor(name: string, timeoutMs?: number, times?: number): Promise<void>;
  count(name: string): number;
  close(): Promise<void>;
}

/** An HTTP server on 127.0.0.1 counting the calls guests make to it: how tests learn a guest is up. */
export async function startGuestSignals(): Promise<GuestSignals> {
  const calls = new Map<string, number>();
  const waiters = new Set<() => void>();
  const server = http.createServer((req, res) => {
    const name = (req.url ?? '/').slice(1);
    calls.set(name, (calls.get(name) ?? 0) + 1);
    req.resume();
    res.end('ok\n');
    for (const w of waiters) w();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (name) => `http://${HOST_FROM_GUEST}:${port}/${name}`,
    count: (name) => calls.get(name) ?? 0,
    waitFor(name, timeoutMs = 120_000, times = 1) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if ((calls.get(name) ?? 0) < times) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no guest called ${name} within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * One CPU-hungry phase at a time among the test files that ask (a directory made atomically under `dir`, the
 * hypervisor's shared directory): on 2 cores two busy guests would each read half a CPU, and a busy guest slows
 * a CPU-bound test (the bulk fuzzing) twofold. Answers the release.
 */
export async function exclusiveCpu(dir: string, timeoutMs = 300_000): Promise<() => Promise<void>> {
  const lock = path.join(dir, 'cpu-busy.lock');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await mkdir(lock);
      return () => rm(lock, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (Date.now() > deadline) throw new Error(`${lock} still held after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}
