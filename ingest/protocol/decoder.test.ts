import { describe, expect, it } from 'vitest';
import type { Notification, ValueList } from '../types.js';
import { parseAuthFile, type UserLookup } from './auth-file.js';
import { DecodeError } from './decode-error.js';
import { copyValueList, type DecoderOptions, PacketDecoder } from './decoder.js';
import type { SecurityLevel } from './parts.js';
import {
  type ExpectedNotification,
  type ExpectedValues,
  expectedRecords,
  FIXTURE_FOLDERS,
  FIXTURE_USER,
  type FixtureFolder,
  fixturePackets,
} from './test-fixtures.js';

const users = (text: string): UserLookup => {
  const map = parseAuthFile(text);
  return { password: (user) => map.get(user) };
};
const aliceUsers = users(`${FIXTURE_USER.username}: ${FIXTURE_USER.password}`);

function decodeAll(packets: Buffer[], options: Partial<DecoderOptions> = {}) {
  const values: ValueList[] = [];
  const notifications: Notification[] = [];
  const decoder = new PacketDecoder({
    exact: true,
    ...options,
    onValues: (vl) => values.push(copyValueList(vl)),
    onNotification: (n) => notifications.push(n),
  });
  const summaries = packets.map((packet) => decoder.decode(packet));
  return { values, notifications, summaries };
}

function expectMatchesCollectd(folder: FixtureFolder, values: ValueList[], notifications: Notification[]) {
  const expected = expectedRecords(folder);
  const expectedValues = expected.filter((r): r is ExpectedValues => r.kind === 'values');
  const expectedNotifications = expected.filter((r): r is ExpectedNotification => r.kind === 'notification');

  expect(values).toHaveLength(expectedValues.length);
  values.forEach((vl, i) => {
    const want = expectedValues[i];
    expect({
      host: vl.host,
      plugin: vl.plugin,
      plugin_instance: vl.pluginInstance,
      type: vl.type,
      type_instance: vl.typeInstance,
      interval: vl.interval,
      dstypes: vl.dsTypes,
    }).toEqual({
      host: want.host,
      plugin: want.plugin,
      plugin_instance: want.plugin_instance,
      type: want.type,
      type_instance: want.type_instance,
      interval: want.interval,
      dstypes: want.dstypes,
    });
    expect(Math.abs(vl.time - want.time)).toBeLessThanOrEqual(1e-6);
    vl.values.forEach((value, j) => {
      if (typeof value === 'bigint') expect(value.toString()).toBe(want.values_str[j]);
      else if (Number.isNaN(value)) expect(want.values[j]).toBe('NaN');
      else expect(value).toBe(want.values[j]);
    });
  });

  // Notifications leave at once, one per packet, so they interleave differently: compare as multisets.
  const byTime = <T extends { time: number }>(list: T[]) => [...list].sort((a, b) => a.time - b.time);
  const got = byTime(notifications);
  const want = byTime(expectedNotifications);
  expect(got).toHaveLength(want.length);
  got.forEach((n, i) => {
    expect(Math.abs(n.time - want[i].time)).toBeLessThanOrEqual(1e-6);
    expect([n.host, n.plugin, n.pluginInstance, n.type, n.typeInstance, n.severity, n.message]).toEqual([
      want[i].host,
      want[i].plugin,
      want[i].plugin_instance,
      want[i].type,
      want[i].type_instance,
      want[i].severity,
      want[i].message,
    ]);
  });
}

describe('decoding the captured collectd packets', () => {
  for (const folder of FIXTURE_FOLDERS) {
    it(`${folder}: agrees with what collectd recorded`, () => {
      const packets = fixturePackets(folder).map((p) => p.bytes);
      const { values, notifications, summaries } = decodeAll(
        packets,
        folder === 'signed' ? { users: aliceUsers } : {},
      );
      expectMatchesCollectd(folder, values, notifications);
      for (const summary of summaries) {
        expect(summary.refused + summary.incomplete).toBe(0);
        expect(summary.signed).toBe(folder === 'signed');
      }
    });
  }

  it('fast mode gives the same value lists with numbers instead of bigints', () => {
    const packets = fixturePackets('virt').map((p) => p.bytes);
    const exact = decodeAll(packets).values;
    const fast = decodeAll(packets, { exact: false }).values;
    expect(fast.map((vl) => vl.values)).toEqual(exact.map((vl) => vl.values.map(Number)));
    expect(fast.flatMap((vl) => vl.values).every((v) => typeof v === 'number')).toBe(true);
  });

  it('hands value lists over in a reused object (copy what you keep)', () => {
    const seen = new Set<ValueList>();
    const decoder = new PacketDecoder({ onValues: (vl) => seen.add(vl) });
    for (const packet of fixturePackets('plain')) decoder.decode(packet.bytes);
    expect(seen.size).toBe(1);
  });
});

describe('signed packets', () => {
  const signed = fixturePackets('signed').map((p) => p.bytes);

  it('are decoded at level sign with the right password', () => {
    const { values, summaries } = decodeAll(signed, { securityLevel: 'sign', users: aliceUsers });
    expect(values).toHaveLength(416);
    expect(summaries.every((s) => s.signed && s.refused === 0)).toBe(true);
  });

  for (const level of ['none', 'sign'] as SecurityLevel[]) {
    it(`with a wrong password are an auth failure at level ${level}`, () => {
      const decoder = new PacketDecoder({
        securityLevel: level,
        users: users('alice: wrong'),
        onValues: () => {},
      });
      const error = catchError(() => decoder.decode(signed[0]));
      expect(error).toBeInstanceOf(DecodeError);
      expect(error.kind).toBe('auth');
      expect(error.reason).toMatch(/alice.*does not match/);
    });
  }

  it('from an unknown user are an auth failure, never decoded', () => {
    const onValues = (): void => {
      throw new Error('decoded');
    };
    const decoder = new PacketDecoder({ securityLevel: 'sign', users: users('bob: s3cret'), onValues });
    const error = catchError(() => decoder.decode(signed[0]));
    expect([error.kind, error.reason]).toEqual(['auth', 'signed by unknown user "alice"']);
  });

  it('are accepted unverified at level none without an auth file, as collectd does', () => {
    expect(decodeAll(signed).values).toHaveLength(416);
  });

  it('are dropped at level encrypt: only encrypted data counts', () => {
    const { values, summaries } = decodeAll(signed, { securityLevel: 'encrypt', users: aliceUsers });
    expect(values).toHaveLength(0);
    expect(summaries.every((s) => s.refused > 0 && !s.signed)).toBe(true);
  });

  it('a tampered byte breaks the signature', () => {
    const tampered = Buffer.from(signed[0]);
    tampered[tampered.length - 1] ^= 1;
    const decoder = new PacketDecoder({ users: aliceUsers, onValues: () => {} });
    expect(catchError(() => decoder.decode(tampered)).kind).toBe('auth');
  });
});

describe('security levels on plain packets', () => {
  const plain = fixturePackets('plain').map((p) => p.bytes);
  for (const level of ['sign', 'encrypt'] as const) {
    it(`level ${level} drops unsigned data and counts the parts`, () => {
      const { values, summaries } = decodeAll(plain, { securityLevel: level, users: aliceUsers });
      expect(values).toHaveLength(0);
      expect(summaries.every((s) => s.refused > 0)).toBe(true);
    });
  }

  it('a level above none needs an auth file, as collectd requires one', () => {
    expect(() => new PacketDecoder({ securityLevel: 'sign', onValues: () => {} })).toThrow(/auth file/);
  });
});

/** Hand-made packets for the protocol's corners. */
const part = (type: number, payload: Buffer) => {
  const header = Buffer.alloc(4);
  header.writeUInt16BE(type, 0);
  header.writeUInt16BE(payload.length + 4, 2);
  return Buffer.concat([header, payload]);
};
const str = (type: number, text: string) => part(type, Buffer.from(`${text}\0`, 'utf8'));
const num = (type: number, value: bigint) => {
  const payload = Buffer.alloc(8);
  payload.writeBigUInt64BE(value);
  return part(type, payload);
};
const gaugeValues = (...gauges: number[]) => {
  const payload = Buffer.alloc(2 + 9 * gauges.length);
  payload.writeUInt16BE(gauges.length, 0);
  gauges.forEach((g, i) => {
    payload[2 + i] = 1;
    payload.writeDoubleLE(g, 2 + gauges.length + 8 * i);
  });
  return part(6, payload);
};
const identity = [str(0, 'h'), num(8, 1n << 30n), str(2, 'p'), str(4, 't')];

function decodeOne(packet: Buffer) {
  const { values, notifications, summaries } = decodeAll([packet]);
  return { values, notifications, summary: summaries[0] };
}

function catchError(fn: () => unknown): DecodeError {
  try {
    fn();
  } catch (error) {
    if (error instanceof DecodeError) return error;
    throw error;
  }
  throw new Error('expected a DecodeError');
}

describe('protocol corners', () => {
  it('carries state across parts and resets it with every packet', () => {
    const first = Buffer.concat([...identity, str(5, 'a'), gaugeValues(1), str(5, 'b'), gaugeValues(2)]);
    const second = Buffer.concat([str(0, 'h'), num(8, 1n << 30n), str(2, 'p'), gaugeValues(3)]);
    const { values, summaries } = decodeAll([first, second]);
    expect(values.map((v) => [v.type, v.typeInstance, v.values[0]])).toEqual([
      ['t', 'a', 1],
      ['t', 'b', 2],
    ]);
    expect(summaries[1].incomplete).toBe(1);
  });

  it('reads the old TIME and INTERVAL parts in seconds, and TIME_HR / INTERVAL_HR in 2^-30 s', () => {
    const old = decodeOne(
      Buffer.concat([
        str(0, 'h'),
        num(1, 1700000000n),
        num(7, 10n),
        str(2, 'p'),
        str(4, 't'),
        gaugeValues(1),
      ]),
    );
    expect([old.values[0].time, old.values[0].interval]).toEqual([1700000000, 10]);
    const hr = decodeOne(
      Buffer.concat([
        str(0, 'h'),
        num(8, (1700000000n << 30n) + (1n << 29n)),
        num(9, 3n << 28n),
        str(2, 'p'),
        str(4, 't'),
        gaugeValues(1),
      ]),
    );
    expect([hr.values[0].time, hr.values[0].interval]).toEqual([1700000000.5, 0.75]);
  });

  it('decodes every data source type with its byte order', () => {
    const payload = Buffer.alloc(2 + 4 * 9);
    payload.writeUInt16BE(4, 0);
    payload.set([0, 1, 2, 3], 2);
    payload.writeBigUInt64BE(2n ** 64n - 1n, 6);
    payload.writeDoubleLE(-1.5, 14);
    payload.writeBigInt64BE(-(2n ** 63n), 22);
    payload.writeBigUInt64BE(2n ** 53n + 1n, 30);
    const packet = Buffer.concat([...identity, part(6, payload)]);
    expect(decodeOne(packet).values[0]).toMatchObject({
      dsTypes: ['counter', 'gauge', 'derive', 'absolute'],
      values: [2n ** 64n - 1n, -1.5, -(2n ** 63n), 2n ** 53n + 1n],
    });
  });

  it('skips unknown part types', () => {
    const packet = Buffer.concat([...identity, part(0x7777, Buffer.from('whatever')), gaugeValues(7)]);
    expect(decodeOne(packet).values[0].values).toEqual([7]);
  });

  it('emits a notification when its message arrives, with the state so far', () => {
    const packet = Buffer.concat([
      num(8, 5n << 30n),
      num(0x101, 2n),
      str(0, 'h'),
      str(2, 'p'),
      str(0x100, 'hot'),
    ]);
    expect(decodeOne(packet).notifications).toEqual([
      {
        host: 'h',
        plugin: 'p',
        pluginInstance: '',
        type: '',
        typeInstance: '',
        time: 5,
        severity: 2,
        message: 'hot',
      },
    ]);
  });

  it('skips notifications collectd would ignore: unknown severity, no time, empty message', () => {
    const noSeverity = Buffer.concat([num(8, 5n << 30n), str(0x100, 'x')]);
    const badSeverity = Buffer.concat([num(8, 5n << 30n), num(0x101, 3n), str(0x100, 'x')]);
    const noTime = Buffer.concat([num(0x101, 4n), str(0x100, 'x')]);
    const empty = Buffer.concat([num(8, 5n << 30n), num(0x101, 4n), str(0x100, '')]);
    for (const packet of [noSeverity, badSeverity, noTime, empty]) {
      const { notifications, summary } = decodeOne(packet);
      expect([notifications.length, summary.incomplete]).toEqual([0, 1]);
    }
  });

  it('a string stops at its first NUL, as a C string', () => {
    const packet = Buffer.concat([part(0, Buffer.from('ab\0cd\0')), ...identity.slice(1), gaugeValues(1)]);
    expect(decodeOne(packet).values[0].host).toBe('ab');
  });

  const malformedCases: Array<[string, Buffer, RegExp]> = [
    [
      'a part longer than the packet',
      Buffer.concat([...identity, gaugeValues(1)]).subarray(0, -3),
      /exceeds the/,
    ],
    ['a part length below 4', Buffer.from([0, 0, 0, 2, 0, 0]), /below 4/],
    ['trailing bytes', Buffer.concat([...identity, gaugeValues(1), Buffer.from([0, 6])]), /trailing/],
    ['a string without NUL', part(0, Buffer.from('abc')), /NUL/],
    ['an empty string part', Buffer.concat([part(2, Buffer.alloc(0)), gaugeValues(1)]), /empty/],
    ['a name over 127 bytes', str(0, 'x'.repeat(128)), /exceed/],
    ['a number part of the wrong size', part(8, Buffer.alloc(4)), /not 12/],
    [
      'values whose count disagrees with the length',
      part(6, Buffer.from([0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0])),
      /does not match/,
    ],
    [
      'an unknown data source type',
      part(6, Buffer.from([0, 1, 9, 0, 0, 0, 0, 0, 0, 0, 0])),
      /unknown data source type 9/,
    ],
    ['a values part without values', part(6, Buffer.from([0, 0])), /no values/],
    ['a short signature part', part(0x200, Buffer.alloc(30)), /too short/],
    ['a short encryption part', part(0x210, Buffer.alloc(30)), /too short/],
  ];
  for (const [name, packet, reason] of malformedCases) {
    it(`rejects ${name}`, () => {
      const error = catchError(() => decodeOne(packet));
      expect(error.kind).toBe('malformed');
      expect(error.reason).toMatch(reason);
    });
  }

  it('has emitted the value lists before a malformed part when it throws', () => {
    const packet = Buffer.concat([...identity, gaugeValues(1), part(0, Buffer.from('abc'))]);
    const seen: number[] = [];
    const decoder = new PacketDecoder({ onValues: (vl) => seen.push(vl.values[0] as number) });
    expect(() => decoder.decode(packet)).toThrow(DecodeError);
    expect(seen).toEqual([1]);
  });

  it('an encrypted part without an auth file is an auth failure', () => {
    const payload = Buffer.alloc(60);
    payload.writeUInt16BE(5, 0);
    payload.write('alice', 2);
    expect(catchError(() => decodeOne(part(0x210, payload))).kind).toBe('auth');
  });
});
