import { describe, expect, test } from 'vitest';
import { parseDomainEvent } from './domain-events.js';
import { parseJobInfo, sameMachineMigrationArgs } from './driver/libvirt-driver.js';

describe('virsh event lines', () => {
  test('a lifecycle event with its timestamp, domain and detail', () => {
    expect(
      parseDomainEvent(
        "2026-12-07 09:58:51.762+0000: event 'lifecycle' for domain 'herd-3-web': Suspended Paused",
      ),
    ).toEqual({
      at: Date.parse('2026-12-07T09:58:51.762Z'),
      kind: 'lifecycle',
      domain: 'herd-3-web',
      detail: 'Suspended Paused',
    });
  });

  test('other events, other zones; anything else is not an event', () => {
    const e = parseDomainEvent("2026-12-07 10:58:51.000+0100: event 'reboot' for domain 'a b'");
    expect(e).toMatchObject({
      kind: 'reboot',
      domain: 'a b',
      detail: '',
      at: Date.parse('2026-12-07T09:58:51Z'),
    });
    expect(parseDomainEvent('')).toBeNull();
    expect(parseDomainEvent('events received: 3')).toBeNull();
  });
});

describe('virsh domjobinfo --rawstats', () => {
  test('an outgoing migration under way', () => {
    const out = [
      'Job type: 2',
      '',
      'operation: 5',
      'time_elapsed: 3888',
      'data_total: 135012352',
      'data_processed: 27302124',
      'data_remaining: 99307520',
    ].join('\n');
    expect(parseJobInfo(out)).toEqual({
      operation: 'outgoing migration',
      dataTotalBytes: 135012352,
      dataProcessedBytes: 27302124,
      dataRemainingBytes: 99307520,
    });
  });

  test('no job, or a job that has measured nothing yet', () => {
    expect(parseJobInfo('Job type: 0')).toBeNull();
    expect(parseJobInfo('Job type: 2\noperation: 5\ndata_total: 0\ndata_processed: 0')).toBeNull();
    expect(parseJobInfo('')).toBeNull();
  });
});

describe('where a live migration goes', () => {
  test('a destination on this machine: over loopback, disks being the same files', () => {
    const local = ['--migrateuri', 'tcp://127.0.0.1', '--listen-address', '127.0.0.1', '--unsafe'];
    expect(sameMachineMigrationArgs('qemu+unix:///system?socket=/run/x/libvirt-sock')).toEqual(local);
    expect(sameMachineMigrationArgs('qemu:///system')).toEqual(local);
    expect(sameMachineMigrationArgs('qemu+tcp://127.0.0.1/system')).toEqual(local);
    expect(sameMachineMigrationArgs('qemu+ssh://root@localhost/system')).toEqual(local);
    expect(sameMachineMigrationArgs('qemu+tcp://[::1]/system')).toEqual(local);
  });

  test("another machine: libvirt's own defaults", () => {
    expect(sameMachineMigrationArgs('qemu+ssh://root@h2.example/system')).toEqual([]);
    expect(sameMachineMigrationArgs('qemu+tls://10.0.0.2/system')).toEqual([]);
  });
});
