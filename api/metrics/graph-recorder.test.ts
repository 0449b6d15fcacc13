import { expect, test } from 'vitest';
import { LiveView } from '../../ingest/live-view.js';
import type { DsType, Point, ValueList } from '../../ingest/types.js';
import { GraphRecorder, GUEST_MEASUREMENT, HOST_MEASUREMENT } from './graph-recorder.js';

const MiB = 1024 * 1024;

function feed(
  view: LiveView,
  host: string,
  time: number,
  plugin: string,
  instance: string,
  type: string,
  typeInstance: string,
  ds: DsType[],
  values: number[],
  names: string[],
) {
  const vl: ValueList = {
    host,
    plugin,
    pluginInstance: instance,
    type,
    typeInstance,
    time,
    interval: 10,
    dsTypes: ds,
    values,
  };
  view.update(vl, names);
}

/** Two samples 10 s apart: 2 CPUs 20 % busy, eth0 1000 B/s in, lo ignored, sda 4096 B/s read, sda1 ignored. */
function twoSamples(view: LiveView): void {
  for (const t of [0, 10]) {
    const time = 1000 + t;
    for (const cpu of ['0', '1']) {
      feed(view, 'h1', time, 'cpu', cpu, 'cpu', 'idle', ['derive'], [80 * t], ['value']);
      feed(view, 'h1', time, 'cpu', cpu, 'cpu', 'user', ['derive'], [20 * t], ['value']);
    }
    feed(view, 'h1', time, 'memory', '', 'memory', 'used', ['gauge'], [1024 * MiB], ['value']);
    feed(view, 'h1', time, 'memory', '', 'memory', 'free', ['gauge'], [3072 * MiB], ['value']);
    feed(view, 'h1', time, 'memory', '', 'memory', 'cached', ['gauge'], [512 * MiB], ['value']);
    feed(
      view,
      'h1',
      time,
      'load',
      '',
      'load',
      '',
      ['gauge', 'gauge', 'gauge'],
      [1, 0.5, 0.25],
      ['shortterm', 'midterm', 'longterm'],
    );
    feed(
      view,
      'h1',
      time,
      'interface',
      'eth0',
      'if_octets',
      '',
      ['derive', 'derive'],
      [1000 * t, 100 * t],
      ['rx', 'tx'],
    );
    feed(
      view,
      'h1',
      time,
      'interface',
      'lo',
      'if_octets',
      '',
      ['derive', 'derive'],
      [1e6 * t, 1e6 * t],
      ['rx', 'tx'],
    );
    feed(
      view,
      'h1',
      time,
      'disk',
      'sda',
      'disk_octets',
      '',
      ['derive', 'derive'],
      [4096 * t, 0],
      ['read', 'write'],
    );
    feed(
      view,
      'h1',
      time,
      'disk',
      'sda1',
      'disk_octets',
      '',
      ['derive', 'derive'],
      [4096 * t, 0],
      ['read', 'write'],
    );
    feed(view, 'guest-uuid', time, 'virt', '', 'virt_cpu_total', '', ['derive'], [5e8 * t], ['value']);
    feed(view, 'guest-uuid', time, 'virt', '', 'memory', 'total', ['gauge'], [512 * MiB], ['value']);
  }
}

test('one point per host and guest and sample, with the figures graphs draw', () => {
  const view = new LiveView();
  const written: Point[] = [];
  const recorder = new GraphRecorder(view, { write: (points) => written.push(...points) });
  twoSamples(view);
  expect(recorder.record()).toBe(2);
  const host = written.find((p) => p.measurement === HOST_MEASUREMENT)!;
  expect(host.tags).toEqual({ host: 'h1' });
  expect(host.time).toBe(1010);
  expect(host.fields.cpu_count).toBe(2);
  expect(host.fields.cpu_busy_cores).toBeCloseTo(0.4, 9);
  expect(host.fields).toMatchObject({
    load1: 1,
    load5: 0.5,
    load15: 0.25,
    mem_used: 1024,
    mem_free: 3072,
    mem_cached: 512,
    net_rx: 1000,
    net_tx: 100,
    disk_read: 4096,
    disk_write: 0,
  });
  const guest = written.find((p) => p.measurement === GUEST_MEASUREMENT)!;
  expect(guest.tags).toEqual({ host: 'guest-uuid' });
  expect(guest.fields.cpu_percent).toBeCloseTo(50, 9);
  expect(guest.fields.mem).toBe(512);
});

test('nothing new, nothing written', () => {
  const view = new LiveView();
  const written: Point[] = [];
  const recorder = new GraphRecorder(view, { write: (points) => written.push(...points) });
  twoSamples(view);
  recorder.record();
  expect(recorder.record()).toBe(0);
  expect(written).toHaveLength(2);
});

test('a rate needs two samples, and a counter reset is no figure: never a zero or a dip', () => {
  const view = new LiveView();
  const written: Point[] = [];
  const recorder = new GraphRecorder(view, { write: (points) => written.push(...points) });
  const sample = (time: number, eth0: number, eth1: number, vnet: number, vda: number) => {
    feed(view, 'h1', time, 'memory', '', 'memory', 'used', ['gauge'], [MiB], ['value']);
    for (const [nic, v] of [
      ['eth0', eth0],
      ['eth1', eth1],
    ] as const)
      feed(view, 'h1', time, 'interface', nic, 'if_octets', '', ['derive', 'derive'], [v, v], ['rx', 'tx']);
    feed(view, 'g', time, 'virt', 'vnet0', 'if_octets', '', ['derive', 'derive'], [vnet, vnet], ['rx', 'tx']);
    feed(
      view,
      'g',
      time,
      'virt',
      'vda',
      'disk_octets',
      '',
      ['derive', 'derive'],
      [vda, vda],
      ['read', 'write'],
    );
    written.length = 0;
    recorder.record();
    const fields = (measurement: string) => written.find((p) => p.measurement === measurement)?.fields;
    return { host: fields(HOST_MEASUREMENT), guest: fields(GUEST_MEASUREMENT) };
  };
  // The first sample: no rates yet (the gauges are written).
  const first = sample(1000, 0, 0, 0, 0);
  expect(first.host).toEqual({ mem_used: 1 });
  expect(first.guest).toBeUndefined();
  // 10 s later: 100 B/s on each NIC.
  const second = sample(1010, 1000, 1000, 1000, 1000);
  expect(second.host).toMatchObject({ net_rx: 200, net_tx: 200 });
  expect(second.guest).toEqual({ net_rx: 100, net_tx: 100, disk_read: 100, disk_write: 100 });
  // eth1 and the guest's disk restart their counters: those sums are unknown, not smaller.
  const reset = sample(1020, 2000, 5, 2000, 3);
  expect(reset.host).toEqual({ mem_used: 1 });
  expect(reset.guest).toEqual({ net_rx: 100, net_tx: 100 });
});
