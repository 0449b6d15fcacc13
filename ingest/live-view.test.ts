import { expect, test } from 'vitest';
import { LiveView } from './live-view.js';
import type { DsType, ValueList } from './types.js';

const vl = (over: Partial<ValueList>): ValueList => ({
  host: 'h1',
  plugin: 'interface',
  pluginInstance: 'eth0',
  type: 'if_octets',
  typeInstance: '',
  time: 100,
  interval: 10,
  dsTypes: ['derive', 'derive'],
  values: [1000, 2000],
  ...over,
});
const RX_TX = ['rx', 'tx'];

test('rates come from the last two samples of counters and derives; gauges and first samples have none', () => {
  const live = new LiveView(() => 5);
  live.update(vl({}), RX_TX);
  expect(live.get('h1', 'interface', 'eth0', 'if_octets')).toMatchObject({
    values: [1000, 2000],
    rates: [null, null],
  });
  live.update(vl({ time: 110, values: [1500, 2100n] }), RX_TX);
  expect(live.get('h1', 'interface', 'eth0', 'if_octets')).toMatchObject({
    values: [1500, 2100],
    rates: [50, 10],
    time: 110,
    names: RX_TX,
  });
  live.update(vl({ time: 120, dsTypes: ['gauge', 'counter'], values: [7, 2200] }), RX_TX);
  // another shape: no earlier sample of it
  expect(live.get('h1', 'interface', 'eth0', 'if_octets')?.rates).toEqual([null, null]);
  live.update(vl({ time: 130, dsTypes: ['gauge', 'counter'], values: [8, 2300] }), RX_TX);
  expect(live.get('h1', 'interface', 'eth0', 'if_octets')?.rates).toEqual([null, 10]);
  expect(live.lastSeen('h1')).toBe(5);
});

test('a counter that went backwards, or a sample older than the last, gives no rate', () => {
  const live = new LiveView();
  live.update(vl({ time: 100, values: [1000, 1000] }), RX_TX);
  live.update(vl({ time: 110, values: [500, 1100] }), RX_TX);
  expect(live.get('h1', 'interface', 'eth0', 'if_octets')?.rates).toEqual([null, 10]);
  live.update(vl({ time: 105, values: [600, 1200] }), RX_TX);
  expect(live.get('h1', 'interface', 'eth0', 'if_octets')).toMatchObject({
    values: [600, 1200],
    rates: [null, null],
  });
});

test('what readers get is a snapshot, not the live storage', () => {
  const live = new LiveView();
  live.update(vl({}), RX_TX);
  const before = live.series('h1')[0];
  live.update(vl({ time: 110, values: [3000, 4000] }), RX_TX);
  expect(before.values).toEqual([1000, 2000]);
  expect(live.series('h1')[0].values).toEqual([3000, 4000]);
});

test('series stay apart however many names the fleet uses', () => {
  const live = new LiveView();
  // More distinct names than get compact ids: the rest are keyed by their names, and both kinds are found.
  for (let i = 0; i < 9000; i++) live.update(vl({ typeInstance: `ti-${i}`, values: [i, i] }), RX_TX);
  expect(live.series('h1')).toHaveLength(9000);
  for (const i of [0, 4500, 8191, 8192, 8999]) {
    expect(live.get('h1', 'interface', 'eth0', 'if_octets', `ti-${i}`)?.values).toEqual([i, i]);
  }
  expect(live.get('h1', 'interface', 'eth0', 'if_octets', 'never-seen')).toBeUndefined();
  // Names are not joined ambiguously: "a/b" + "c" is not "a" + "b/c".
  live.update(vl({ host: 'h2', plugin: 'a/b', pluginInstance: 'c', values: [1, 1] }), RX_TX);
  live.update(vl({ host: 'h2', plugin: 'a', pluginInstance: 'b/c', values: [2, 2] }), RX_TX);
  expect(live.series('h2')).toHaveLength(2);
});

test('host summary: load, memory and CPU busy share from the cpu plugin', () => {
  const live = new LiveView();
  const g = (over: Partial<ValueList>, dsTypes: DsType[] = ['gauge']) => vl({ dsTypes, ...over });
  for (const [time, idle, user] of [
    [100, 1000, 100],
    [110, 1800, 300],
  ]) {
    live.update(
      g({ plugin: 'cpu', pluginInstance: '0', type: 'cpu', typeInstance: 'idle', time, values: [idle] }, [
        'derive',
      ]),
      ['value'],
    );
    live.update(
      g({ plugin: 'cpu', pluginInstance: '0', type: 'cpu', typeInstance: 'user', time, values: [user] }, [
        'derive',
      ]),
      ['value'],
    );
  }
  live.update(
    g({ plugin: 'load', pluginInstance: '', type: 'load', values: [0.5, 0.25, 0.125] }, [
      'gauge',
      'gauge',
      'gauge',
    ]),
    ['shortterm', 'midterm', 'longterm'],
  );
  live.update(
    g({
      plugin: 'memory',
      pluginInstance: '',
      type: 'memory',
      typeInstance: 'used',
      values: [2 * 1024 * 1024],
    }),
    ['value'],
  );
  expect(live.hostSummary('h1')).toMatchObject({
    load1: 0.5,
    load5: 0.25,
    load15: 0.125,
    memoryUsedMiB: 2,
    cpuCount: 1,
  });
  expect(live.hostSummary('h1')?.cpuBusyPercent).toBeCloseTo(20, 9);
});

test('prune forgets hosts not heard from', () => {
  let now = 1000;
  const live = new LiveView(() => now);
  live.update(vl({ host: 'old' }), RX_TX);
  now = 100_000;
  live.update(vl({ host: 'new' }), RX_TX);
  expect(live.prune(50_000)).toBe(1);
  expect(live.hostNames()).toEqual(['new']);
});

test('what changed is told once per host, however many value lists it sent, and only what is still known', () => {
  let now = 0;
  const live = new LiveView(() => now);
  for (const time of [100, 110]) {
    live.update(vl({ time }), RX_TX);
    live.update(vl({ time, pluginInstance: 'eth1' }), RX_TX);
  }
  live.update(vl({ host: 'h2' }), RX_TX);
  expect(live.takeChanged().sort()).toEqual(['h1', 'h2']);
  expect(live.takeChanged()).toEqual([]);
  live.update(vl({ time: 120 }), RX_TX);
  now = 100_000;
  live.update(vl({ host: 'h3' }), RX_TX);
  // h1 goes with the pruning (not heard from for a minute): only h3 is left to tell.
  live.prune(60_000);
  expect(live.takeChanged()).toEqual(['h3']);
});
