import { spawn } from 'node:child_process';
import { access, readFile } from 'node:fs/promises';
import type { GuestImage } from './guest-image.js';

/** Whether the suite's guests run under KVM, and why (printed by the global setup). */
export interface KvmChoice {
  kvm: boolean;
  reason: string;
}

/** What the guest's init prints on its serial console once it is up (lib/testing/guest-image.ts). */
const READY_MARK = 'herd-guest: ready';

/**
 * Proves KVM by booting: a `/dev/kvm` that opens is not enough (a machine without vmx/svm may hand one out and then
 * hang every guest in its first instructions). The tiny guest boots once under `qemu -accel kvm` with a short bound;
 * only if it prints its ready line in time do the suite's guests use KVM. Anything else, with the reason: TCG.
 */
export async function probeKvm(image: GuestImage, options: { timeoutMs?: number } = {}): Promise<KvmChoice> {
  const timeoutMs = options.timeoutMs ?? 20_000;
  try {
    await access('/dev/kvm', 6);
  } catch {
    return { kvm: false, reason: 'no usable /dev/kvm' };
  }
  const cpuFlags = await cpuVirtFlags();
  const started = Date.now();
  const child = spawn(
    'qemu-system-x86_64',
    [
      ...['-accel', 'kvm', '-m', '256', '-smp', '1', '-nodefaults', '-no-reboot'],
      ...['-display', 'none', '-serial', 'stdio', '-monitor', 'none', '-nic', 'none'],
      ...['-kernel', image.kernel, '-initrd', image.initrd, '-append', 'console=ttyS0 quiet panic=-1'],
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const outcome = await new Promise<'ready' | 'timeout' | 'exited' | 'error'>((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), timeoutMs);
    const finish = (result: 'ready' | 'exited' | 'error') => {
      clearTimeout(timer);
      resolve(result);
    };
    const collect = (chunk: Buffer) => {
      output = (output + chunk).slice(-4096);
      if (output.includes(READY_MARK)) finish('ready');
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.once('error', (err) => {
      output += String(err.message);
      finish('error');
    });
    child.once('exit', () => finish('exited'));
  });
  child.kill('SIGKILL');
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (outcome === 'ready') return { kvm: true, reason: `the test guest booted under KVM in ${seconds} s` };
  const flags = cpuFlags ? '' : ' (/proc/cpuinfo shows no vmx/svm)';
  if (outcome === 'timeout') {
    return {
      kvm: false,
      reason: `/dev/kvm opens, but the test guest did not boot under KVM within ${timeoutMs / 1000} s${flags}`,
    };
  }
  const last = output.trim().split('\n').slice(-2).join(' ').slice(0, 300);
  return { kvm: false, reason: `qemu could not run a guest under KVM${flags}: ${last || 'no output'}` };
}

async function cpuVirtFlags(): Promise<boolean> {
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  return /^flags\s*:.*\b(vmx|svm)\b/m.test(cpuinfo);
}
