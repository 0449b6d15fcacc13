import { describe, expect, test } from 'vitest';
import { migratesOnThisMachine } from './host-rules.js';

describe('where a live migration goes', () => {
  test('a destination on this machine: over loopback, disks being the same files', () => {
    expect(migratesOnThisMachine('qemu+unix:///system?socket=/run/x/libvirt-sock')).toBe(true);
    expect(migratesOnThisMachine('qemu:///system')).toBe(true);
    expect(migratesOnThisMachine('qemu+tcp://127.0.0.1/system')).toBe(true);
    expect(migratesOnThisMachine('qemu+ssh://root@localhost/system')).toBe(true);
    expect(migratesOnThisMachine('qemu+tcp://[::1]/system')).toBe(true);
  });

  test("another machine: libvirt's own defaults", () => {
    expect(migratesOnThisMachine('qemu+ssh://root@h2.example/system')).toBe(false);
    expect(migratesOnThisMachine('qemu+tls://10.0.0.2/system')).toBe(false);
    expect(migratesOnThisMachine('not a uri')).toBe(false);
  });
});
