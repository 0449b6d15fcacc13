import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildGuestImage, type GuestImage } from './guest-image.js';
import { sharedHypervisor } from './hypervisor.js';
import { probeKvm } from './kvm-probe.js';

const run = promisify(execFile);

describe('the suite proves KVM by booting before it uses it', () => {
  let dir: string;
  let image: GuestImage;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'herd-kvm-probe-'));
    image = await buildGuestImage(dir);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('falls back to TCG, with a reason, when the guest does not boot under KVM in time', async () => {
    // A bound far too short to boot anything: the same path as a /dev/kvm that opens but hangs its guests
    // (or, on a machine without /dev/kvm, the path that never tries).
    const choice = await probeKvm(image, { timeoutMs: 1 });
    expect(choice.kvm).toBe(false);
    expect(choice.reason).toMatch(/did not boot under KVM within|no usable \/dev\/kvm|could not run a guest/);
  });

  it("the suite's libvirtds offer KVM exactly when the probe proved it", async () => {
    const hv = sharedHypervisor();
    for (const host of hv.hosts) {
      const { stdout } = await run('virsh', ['-q', '-c', host.uri, 'capabilities']);
      expect(stdout.includes("<domain type='kvm'"), host.uri).toBe(host.domainType === 'kvm');
    }
  });
});
