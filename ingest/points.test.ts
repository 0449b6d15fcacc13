import { expect, test } from 'vitest';
import { valueListToPoints } from './points.js';
import type { Point, ValueList } from './types.js';

const load: ValueList = {
  host: 'h1',
  plugin: 'load',
  pluginInstance: '',
  type: 'load',
  typeInstance: '',
  time: 1700000000.5,
  interval: 10,
  dsTypes: ['gauge', 'gauge', 'gauge'],
  values: [0.5, Number.NaN, 0.25],
};

test('split mode writes InfluxDB collectd-service measurements and skips non-finite gauges', () => {
  const out: Point[] = [];
  const r = valueListToPoints(load, ['shortterm', 'midterm', 'longterm'], 'split', out);
  expect(r).toEqual({ points: 2, nonFinite: 1 });
  expect(out).toEqual([
    {
      measurement: 'load_shortterm',
      tags: { host: 'h1', type: 'load' },
      fields: { value: 0.5 },
      time: 1700000000.5,
    },
    {
      measurement: 'load_longterm',
      tags: { host: 'h1', type: 'load' },
      fields: { value: 0.25 },
      time: 1700000000.5,
    },
  ]);
});

test('join mode writes one point per value list with a field per value name', () => {
  const out: Point[] = [];
  const vl: ValueList = {
    ...load,
    plugin: 'interface',
    pluginInstance: 'eth0',
    type: 'if_octets',
    dsTypes: ['derive', 'derive'],
    values: [10n, 20],
  };
  expect(valueListToPoints(vl, ['rx', 'tx'], 'join', out)).toEqual({ points: 1, nonFinite: 0 });
  expect(out).toEqual([
    {
      measurement: 'interface',
      tags: { host: 'h1', instance: 'eth0', type: 'if_octets' },
      fields: { rx: 10, tx: 20 },
      time: 1700000000.5,
    },
  ]);
});

test('a value list without time is stamped on arrival', () => {
  const out: Point[] = [];
  valueListToPoints({ ...load, time: 0, values: [1, 1, 1] }, ['a', 'b', 'c'], 'split', out, () => 5000);
  expect(out[0].time).toBe(5);
});
