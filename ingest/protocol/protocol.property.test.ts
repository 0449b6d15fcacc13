import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DsType, Notification, Severity, ValueList } from '../types.js';
import { DecodeError } from './decode-error.js';
import { copyValueList, PacketDecoder } from './decoder.js';
import { type EncoderSecurity, PacketEncoder } from './encoder.js';
import type { SecurityLevel } from './parts.js';
import { FIXTURE_FOLDERS, FIXTURE_USER, fixturePackets } from './test-fixtures.js';

// A fixed seed keeps the suite deterministic; change it locally to explore other inputs.
fc.configureGlobal({ seed: 20261123 });

const name = (minLength: number) =>
  fc
    .string({ unit: 'grapheme', minLength, maxLength: 12 })
    .filter((s) => !s.includes('\0') && Buffer.byteLength(s) <= 127);

const dsValue: Record<DsType, fc.Arbitrary<number | bigint>> = {
  gauge: fc.double(),
  counter: fc.bigInt(0n, 2n ** 64n - 1n),
  absolute: fc.bigInt(0n, 2n ** 64n - 1n),
  derive: fc.bigInt(-(2n ** 63n), 2n ** 63n - 1n),
};

const valueList: fc.Arbitrary<ValueList> = fc
  .record({
    host: name(1),
    plugin: name(1),
    pluginInstance: name(0),
    type: name(1),
    typeInstance: name(0),
    time: fc.double({ min: 2 ** -30, max: 2 ** 33, noNaN: true }),
    interval: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 86_400, noNaN: true })),
    sources: fc.array(fc.constantFrom<DsType>('gauge', 'counter', 'derive', 'absolute'), {
      minLength: 1,
      maxLength: 8,
    }),
  })
  .chain(({ sources, ...rest }) =>
    fc.tuple(...sources.map((ds) => dsValue[ds])).map((values) => ({ ...rest, dsTypes: sources, values })),
  );

const notification: fc.Arbitrary<Notification> = fc.record({
  host: name(0),
  plugin: name(0),
  pluginInstance: name(0),
  type: name(0),
  typeInstance: name(0),
  time: fc.double({ min: 1, max: 2 ** 33, noNaN: true }),
  severity: fc.constantFrom<Severity>(1, 2, 4),
  message: fc.string({ minLength: 1, maxLength: 80 }).filter((s) => !s.includes('\0')),
});

const security: fc.Arbitrary<EncoderSecurity | undefined> = fc.oneof(
  fc.constant(undefined),
  fc.record({
    level: fc.constantFrom<'sign' | 'encrypt'>('sign', 'encrypt'),
    username: fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !s.includes('\0')),
    password: fc.string({ minLength: 1, maxLength: 30 }),
  }),
);

/** The decoded time is the encoded one to within the protocol's 2^-30 s. */
const sameTime = (a: number, b: number) => Math.abs(a - b) <= 2 ** -30 * 1.01 + Number.EPSILON * Math.abs(b);

function sameValues(got: ValueList, want: ValueList) {
  expect(got.dsTypes).toEqual(want.dsTypes);
  got.values.forEach((value, i) => {
    const expected = want.values[i];
    if (typeof expected === 'bigint') expect(value).toBe(expected);
    else expect(Object.is(value, expected)).toBe(true);
  });
}

describe('encode → decode round trip', () => {
  it('value lists of all value types, plain, signed and encrypted', () => {
    fc.assert(
      fc.property(
        fc.array(valueList, { minLength: 1, maxLength: 40 }),
        security,
        // 900 bytes hold the largest value list generated here (five 127-byte names, eight values).
        fc.integer({ min: 900, max: 65_535 }),
        (lists, sec, maxPacketSize) => {
          const packets: Buffer[] = [];
          const encoder = new PacketEncoder({
            onPacket: (p) => packets.push(p),
            security: sec,
            maxPacketSize,
          });
          for (const vl of lists) encoder.addValues(vl);
          encoder.flush();

          const decoded: ValueList[] = [];
          const level: SecurityLevel = sec?.level ?? 'none';
          const decoder = new PacketDecoder({
            exact: true,
            securityLevel: level,
            users: sec && { password: (user) => (user === sec.username ? sec.password : undefined) },
            onValues: (vl) => decoded.push(copyValueList(vl)),
          });
          for (const packet of packets) {
            expect(packet.length).toBeLessThanOrEqual(maxPacketSize);
            const summary = decoder.decode(packet);
            expect([summary.signed, summary.encrypted, summary.refused]).toEqual([
              level === 'sign',
              level === 'encrypt',
              0,
            ]);
          }
          expect(decoded).toHaveLength(lists.length);
          decoded.forEach((got, i) => {
            const want = lists[i];
            expect([got.host, got.plugin, got.pluginInstance, got.type, got.typeInstance]).toEqual([
              want.host,
              want.plugin,
              want.pluginInstance,
              want.type,
              want.typeInstance,
            ]);
            expect(sameTime(got.time, want.time)).toBe(true);
            expect(sameTime(got.interval, want.interval)).toBe(true);
            sameValues(got, want);
          });
        },
      ),
      { numRuns: 150 },
    );
  });

  it('notifications, plain, signed and encrypted', () => {
    fc.assert(
      fc.property(notification, security, (n, sec) => {
        const packets: Buffer[] = [];
        new PacketEncoder({ onPacket: (p) => packets.push(p), security: sec }).addNotification(n);
        const got: Notification[] = [];
        new PacketDecoder({
          securityLevel: sec?.level ?? 'none',
          users: sec && { password: (user) => (user === sec.username ? sec.password : undefined) },
          onValues: () => {},
          onNotification: (x) => got.push(x),
        }).decode(packets[0]);
        expect(got).toHaveLength(1);
        expect({ ...got[0], time: 0 }).toEqual({ ...n, time: 0 });
        expect(sameTime(got[0].time, n.time)).toBe(true);
      }),
      { numRuns: 150 },
    );
  });
});

/** Decoding hostile input may fail only with a DecodeError, at every security level. */
function decodesOrRejects(packet: Uint8Array) {
  const buffer = Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength);
  const users = {
    password: (user: string) => (user === FIXTURE_USER.username ? FIXTURE_USER.password : undefined),
  };
  for (const securityLevel of ['none', 'sign', 'encrypt'] as const) {
    for (const exact of [false, true]) {
      const decoder = new PacketDecoder({
        securityLevel,
        users,
        exact,
        onValues: () => {},
        onNotification: () => {},
      });
      try {
        decoder.decode(buffer);
      } catch (error) {
        if (!(error instanceof DecodeError)) throw error;
      }
    }
  }
  // And without an auth file.
  try {
    new PacketDecoder({ onValues: () => {} }).decode(buffer);
  } catch (error) {
    if (!(error instanceof DecodeError)) throw error;
  }
}

const fixtures = FIXTURE_FOLDERS.flatMap((folder) => fixturePackets(folder).map((p) => p.bytes));

/** Signs a payload as collectd does, so that mutations reach the parser behind the signature. */
function signed(payload: Uint8Array): Buffer {
  const user = Buffer.from(FIXTURE_USER.username);
  const packet = Buffer.alloc(36 + user.length + payload.length);
  packet.writeUInt16BE(0x200, 0);
  packet.writeUInt16BE(36 + user.length, 2);
  user.copy(packet, 36);
  packet.set(payload, 36 + user.length);
  createHmac('sha256', FIXTURE_USER.password).update(packet.subarray(36)).digest().copy(packet, 4);
  return packet;
}

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bits: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
  }),
  fc.record({
    kind: fc.constant('length' as const),
    at: fc.nat(),
    value: fc.integer({ min: 0, max: 0xffff }),
  }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

function mutate(packet: Buffer, mutations: Mutation[]): Buffer {
  let bytes = Buffer.from(packet);
  for (const m of mutations) {
    if (bytes.length === 0) break;
    const at = m.at % bytes.length;
    if (m.kind === 'flip') bytes[at] ^= m.bits;
    else if (m.kind === 'truncate') bytes = bytes.subarray(0, at);
    else if (m.kind === 'insert') bytes = Buffer.concat([bytes.subarray(0, at), m.bytes, bytes.subarray(at)]);
    else if (at + 1 < bytes.length) bytes.writeUInt16BE(m.value, at);
  }
  return bytes;
}

/** Random sequences of well-framed parts of every known type (and some unknown), with random bodies. */
const framedParts = fc
  .array(
    fc.record({
      type: fc.constantFrom(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x100, 0x101, 0x200, 0x210, 0x4242),
      body: fc.uint8Array({ maxLength: 60 }),
    }),
    { maxLength: 30 },
  )
  .map((list) =>
    Buffer.concat(
      list.map(({ type, body }) => {
        const header = Buffer.alloc(4);
        header.writeUInt16BE(type, 0);
        header.writeUInt16BE(body.length + 4, 2);
        return Buffer.concat([header, body]);
      }),
    ),
  );

describe('hostile packets', () => {
  it('random bytes only ever give a DecodeError', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 2048 }), decodesOrRejects), { numRuns: 500 });
  });

  it('randomly framed parts only ever give a DecodeError, signed or not', () => {
    fc.assert(
      fc.property(framedParts, fc.boolean(), (packet, sign) =>
        decodesOrRejects(sign ? signed(packet) : packet),
      ),
      { numRuns: 500 },
    );
  });

  it('mutated fixture packets only ever give a DecodeError, behind a valid signature too', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...fixtures),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        (packet, mutations, sign) => {
          const mutated = mutate(packet, mutations);
          decodesOrRejects(sign ? signed(mutated) : mutated);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('a 64 KiB packet of tiny parts is decoded in bounded time', () => {
    const unknown = Buffer.from([0x42, 0x42, 0, 5, 0]);
    const packet = Buffer.concat(Array.from({ length: Math.floor(65_535 / 5) }, () => unknown));
    const started = performance.now();
    decodesOrRejects(packet);
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});
