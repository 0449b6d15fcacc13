import { describe, expect, it } from 'vitest';
import type { Notification, ValueList } from '../types.js';
import { copyValueList, PacketDecoder } from './decoder.js';
import { encodeValueLists, PacketEncoder } from './encoder.js';
import { PART_SIGNATURE, PART_TIME_HR } from './parts.js';
import { FIXTURE_USER, type FixtureFolder, fixturePackets } from './test-fixtures.js';

const aliceUsers = {
  password: (user: string) => (user === FIXTURE_USER.username ? FIXTURE_USER.password : undefined),
};

type Item = { vl: ValueList } | { n: Notification };

function decodeItems(packet: Buffer): Item[] {
  const items: Item[] = [];
  new PacketDecoder({
    exact: true,
    users: aliceUsers,
    onValues: (vl) => items.push({ vl: copyValueList(vl) }),
    onNotification: (n) => items.push({ n }),
  }).decode(packet);
  return items;
}

/** A packet's parts as [type, bytes], the signature part's hash left out (it covers the times). */
function parts(packet: Buffer): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  for (let pos = 0; pos < packet.length; ) {
    const type = packet.readUInt16BE(pos);
    const length = packet.readUInt16BE(pos + 2);
    const body = packet.subarray(pos, pos + length);
    out.push([type, (type === PART_SIGNATURE ? body.subarray(36) : body).toString('hex')]);
    pos += length;
  }
  return out;
}

/**
 * TIME_HR carries 2^-30 s but a JavaScript number holds today's times to 2^-22 s, so the low 8 bits of
 * collectd's times do not survive `ValueList.time`; everything else must be byte for byte collectd's.
 */
function expectSamePackets(ours: Buffer[], collectds: Buffer[]) {
  expect(ours.map((p) => p.length)).toEqual(collectds.map((p) => p.length));
  ours.forEach((packet, i) => {
    const mine = parts(packet);
    const theirs = parts(collectds[i]);
    expect(mine.map(([type]) => type)).toEqual(theirs.map(([type]) => type));
    mine.forEach(([type, hex], j) => {
      if (type !== PART_TIME_HR) expect(hex).toBe(theirs[j][1]);
      else
        expect(
          Math.abs(Number(BigInt(`0x${hex.slice(8)}`) - BigInt(`0x${theirs[j][1].slice(8)}`))),
        ).toBeLessThan(256);
    });
  });
}

describe('encoding as collectd does', () => {
  const cases: Array<[FixtureFolder, boolean]> = [
    ['plain', false],
    ['virt', false],
    ['virt-uuid', false],
    ['notifications', false],
    ['signed', true],
  ];
  for (const [folder, signed] of cases) {
    it(`${folder}: the same value lists give collectd's packets, cut at the same places`, () => {
      const captured = fixturePackets(folder).map((p) => p.bytes);
      const ours: Buffer[] = [];
      const encoder = new PacketEncoder({
        onPacket: (packet) => ours.push(packet),
        security: signed ? { level: 'sign', ...FIXTURE_USER } : undefined,
      });
      // One stream for the whole capture: collectd sent value packets when full, notifications at once.
      for (const packet of captured) {
        for (const item of decodeItems(packet)) {
          if ('vl' in item) encoder.addValues(item.vl);
          else encoder.addNotification(item.n);
        }
      }
      encoder.flush();
      // Which of a notification and a full value packet left first was a matter of timing.
      const isNotification = (packet: Buffer) => decodeItems(packet).some((item) => 'n' in item);
      for (const notifications of [true, false]) {
        expectSamePackets(
          ours.filter((p) => isNotification(p) === notifications),
          captured.filter((p) => isNotification(p) === notifications),
        );
      }
    });
  }
});

const vl = (overrides: Partial<ValueList> = {}): ValueList => ({
  host: 'h',
  plugin: 'cpu',
  pluginInstance: '0',
  type: 'cpu',
  typeInstance: 'idle',
  time: 1_700_000_000.25,
  interval: 10,
  dsTypes: ['derive'],
  values: [42n],
  ...overrides,
});

describe('PacketEncoder', () => {
  it('writes only the parts that changed since the previous value list of the packet', () => {
    const [packet] = encodeValueLists([
      vl(),
      vl({ typeInstance: 'user' }),
      vl({ typeInstance: 'user', values: [1] }),
    ]);
    const types = parts(packet).map(([type]) => type);
    expect(types).toEqual([0, 8, 9, 2, 3, 4, 5, 6, 5, 6, 6]);
  });

  it('leaves out empty instances at the start of a packet, as collectd does', () => {
    const [packet] = encodeValueLists([vl({ pluginInstance: '', typeInstance: '' })]);
    expect(parts(packet).map(([type]) => type)).toEqual([0, 8, 9, 2, 4, 6]);
  });

  it('keeps packets within the maximum size, 106 bytes kept for security headers', () => {
    const lists = Array.from({ length: 500 }, (_, i) => vl({ typeInstance: `instance-${i}` }));
    for (const maxPacketSize of [300, 1452, 9000, 65535]) {
      const packets = encodeValueLists(lists, {
        maxPacketSize,
        security: { level: 'encrypt', ...FIXTURE_USER },
      });
      expect(Math.max(...packets.map((p) => p.length))).toBeLessThanOrEqual(maxPacketSize);
      const decoded: string[] = [];
      const decoder = new PacketDecoder({
        securityLevel: 'encrypt',
        users: aliceUsers,
        onValues: (v) => decoded.push(v.typeInstance),
      });
      for (const packet of packets) decoder.decode(packet);
      expect(decoded).toEqual(lists.map((l) => l.typeInstance));
    }
  });

  it('sends a notification in a packet of its own, leaving pending value lists pending', () => {
    const packets: Buffer[] = [];
    const encoder = new PacketEncoder({ onPacket: (p) => packets.push(p) });
    encoder.addValues(vl());
    const pending = encoder.pending;
    encoder.addNotification({ ...vl(), severity: 1, message: 'down' });
    expect([packets.length, encoder.pending]).toEqual([1, pending]);
    expect(parts(packets[0]).map(([type]) => type)).toEqual([8, 0x101, 0, 2, 3, 4, 5, 0x100]);
  });

  it('refuses what collectd could not send, leaving the packet as it was', () => {
    const packets: Buffer[] = [];
    const encoder = new PacketEncoder({ onPacket: (p) => packets.push(p) });
    encoder.addValues(vl());
    const pending = encoder.pending;
    expect(() => encoder.addValues(vl({ host: 'x'.repeat(128) }))).toThrow(RangeError);
    expect(() => encoder.addValues(vl({ plugin: 'a\0b' }))).toThrow(RangeError);
    expect(() => encoder.addValues(vl({ host: 'other', values: [-1], dsTypes: ['counter'] }))).toThrow(
      RangeError,
    );
    expect(() => encoder.addValues(vl({ host: 'other', values: [2n ** 63n] }))).toThrow(RangeError);
    expect(() => encoder.addValues(vl({ host: 'other', values: [1.5] }))).toThrow(RangeError);
    expect(() => encoder.addValues(vl({ values: [1, 2] }))).toThrow(RangeError);
    expect(encoder.pending).toBe(pending);
    encoder.flush();
    expect(decodeItems(packets[0])).toHaveLength(1);
    expect(() => new PacketEncoder({ onPacket: () => {}, maxPacketSize: 65536 })).toThrow(RangeError);
    expect(
      () =>
        new PacketEncoder({
          onPacket: () => {},
          security: { level: 'sign', username: 'u'.repeat(71), password: 'p' },
        }),
    ).toThrow(RangeError);
  });

  it('writes integers given as numbers or bigints the same way', () => {
    const asNumbers = vl({ dsTypes: ['counter', 'derive', 'absolute'], values: [2 ** 60, -(2 ** 40), 7] });
    const asBigints = vl({
      dsTypes: ['counter', 'derive', 'absolute'],
      values: [2n ** 60n, -(2n ** 40n), 7n],
    });
    expect(encodeValueLists([asNumbers])).toEqual(encodeValueLists([asBigints]));
  });
});
