import { describe, expect, test } from 'vitest';
import type { Point } from '../types.js';
import { LineBuffer, LineEncoder, parseSeriesKey } from './line-protocol.js';
import { PointRules, Refusal } from './point-rules.js';

const encoder = () => new LineEncoder(new PointRules());

describe('LineEncoder', () => {
  test('writes what InfluxDB’s collectd service stores: tags sorted, empty tags left out, float fields, µs', () => {
    const line = encoder().encode({
      measurement: 'cpu_value',
      tags: { type_instance: 'user', host: 'h1', instance: '', type: 'percent' },
      fields: { value: 12 },
      time: 1_700_000_000.1234567,
    });
    expect(line).toBe('cpu_value,host=h1,type=percent,type_instance=user value=12 1700000000123457');
  });

  test('escapes measurement (comma, space), tag keys and values and field keys (comma, equals, space)', () => {
    const line = encoder().encode({
      measurement: 'm,x y=z',
      tags: { 'k ey': 'a,b=c d', q: `q"uo'te` },
      fields: { 'f,i=e ld': 1.5 },
      time: 1,
    });
    expect(line).toBe(`m\\,x\\ y=z,k\\ ey=a\\,b\\=c\\ d,q=q"uo'te f\\,i\\=e\\ ld=1.5 1000000`);
  });

  test('removes backslashes that line protocol cannot carry, keeps the others', () => {
    const line = encoder().encode({
      measurement: 'm',
      tags: { path: 'C:\\', mid: 'a\\b', before: 'x\\,y', only: '\\' },
      fields: { value: 1 },
      time: 0,
    });
    expect(line).toBe('m,before=x\\,y,mid=a\\b,path=C: value=1 0');
  });

  test('skips non-finite fields and refuses points that cannot be written', () => {
    const e = encoder();
    expect(e.encode({ measurement: 'm', tags: {}, fields: { a: Number.NaN, b: 2 }, time: 0 })).toBe(
      'm b=2 0',
    );
    const refused: Point[] = [
      { measurement: '', tags: {}, fields: { value: 1 }, time: 0 },
      { measurement: 'm', tags: {}, fields: { value: Number.POSITIVE_INFINITY }, time: 0 },
      { measurement: 'm', tags: {}, fields: {}, time: 0 },
      { measurement: 'm', tags: { a: 'x\ny' }, fields: { value: 1 }, time: 0 },
      { measurement: 'm', tags: { time: 'x' }, fields: { value: 1 }, time: 0 },
      { measurement: 'm', tags: {}, fields: { time: 1 }, time: 0 },
      { measurement: 'm', tags: {}, fields: { value: 1 }, time: Number.NaN },
      { measurement: '#m', tags: {}, fields: { value: 1 }, time: 0 },
      { measurement: 'm', tags: { a: 3 as unknown as string }, fields: { value: 1 }, time: 0 },
    ];
    for (const p of refused) expect(e.encode(p)).toBeInstanceOf(Refusal);
  });

  test('write() appends lines to a buffer, newline-separated, and leaves it as it was for a point refused or unreadable', () => {
    const e = encoder();
    const out = new LineBuffer(8);
    expect(
      e.write({ measurement: 'm', tags: { host: 'h1' }, fields: { value: 1 }, time: 1 }, out),
    ).toBeUndefined();
    expect(
      e.write({ measurement: 'm', tags: { a: 'x\ny' }, fields: { value: 2 }, time: 2 }, out),
    ).toBeInstanceOf(Refusal);
    const throwing = {
      get value(): number {
        throw new Error('unreadable');
      },
    };
    expect(() =>
      e.write({ measurement: 'm', tags: { host: 'h2' }, fields: throwing, time: 3 }, out),
    ).toThrow();
    expect(
      e.write({ measurement: 'é', tags: { 'k ey': 'ü,v' }, fields: { value: 0.5 }, time: 3 }, out),
    ).toBeUndefined();
    expect(out.view().toString()).toBe('m,host=h1 value=1 1000000\né,k\\ ey=ü\\,v value=0.5 3000000');
  });

  test('numbers are written as JavaScript prints them', () => {
    const out = new LineBuffer(4);
    const numbers = [
      0,
      -0,
      7,
      -42,
      99_999_999,
      100_000_000,
      1_700_000_000_123_457,
      2 ** 53 - 1,
      -(2 ** 53) + 1,
    ];
    const others = [2 ** 53, 1e21, 1.5, -2.25, 1e-7, 0.1 + 0.2];
    for (const x of [...numbers, ...others]) {
      out.length = 0;
      out.number(x);
      expect(out.view().toString()).toBe(String(x));
    }
  });

  test('encodes 100k points well under a second of one core', () => {
    const e = encoder();
    const tagSets = Array.from({ length: 1000 }, (_, i) => ({
      host: `host-${i}`,
      instance: 'eth0',
      type: 'if_octets',
    }));
    const started = process.cpuUsage();
    let bytes = 0;
    for (let i = 0; i < 100_000; i++) {
      const line = e.encode({
        measurement: 'interface_rx',
        tags: tagSets[i % 1000],
        fields: { value: i * 1.25 },
        time: 1.7e9 + i / 1000,
      });
      bytes += (line as string).length;
    }
    const used = process.cpuUsage(started);
    expect(bytes).toBeGreaterThan(5_000_000);
    expect((used.user + used.system) / 1000).toBeLessThan(500);
  });
});

test('parseSeriesKey reads the escaped keys SHOW SERIES prints', () => {
  expect(parseSeriesKey('m\\,x\\ y,a=b\\,c\\=d\\ e,k\\ ey=v')).toEqual({
    measurement: 'm,x y',
    tags: { a: 'b,c=d e', 'k ey': 'v' },
  });
  expect(parseSeriesKey('cpu')).toEqual({ measurement: 'cpu', tags: {} });
});
