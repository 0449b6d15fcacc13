import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeRemoteError,
  encodePacket,
  encodeRemoteError,
  type Header,
  LibvirtError,
  MESSAGE_MAX,
  PacketDecoder,
  ProtocolError,
} from './packet.js';

const header = (h: Partial<Header> = {}): Header => ({
  program: 0x20008086,
  version: 1,
  procedure: 59,
  type: 1,
  serial: 7,
  status: 0,
  ...h,
});

describe('framing', () => {
  it('writes the length (counting itself) and the six header words', () => {
    const p = encodePacket(header(), new Uint8Array([1, 2, 3, 4]));
    expect(p.toString('hex')).toBe(
      ['00000020', '20008086', '00000001', '0000003b', '00000001', '00000007', '00000000', '01020304'].join(
        '',
      ),
    );
  });

  it('reassembles packets from chunks cut anywhere (property)', () => {
    const packetArb = fc.record({
      header: fc.record({
        program: fc.integer({ min: 0, max: 0xffffffff }),
        version: fc.integer({ min: 0, max: 0xffffffff }),
        procedure: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
        type: fc.integer({ min: 0, max: 5 }),
        serial: fc.integer({ min: 0, max: 0xffffffff }),
        status: fc.integer({ min: 0, max: 2 }),
      }),
      body: fc.uint8Array({ maxLength: 300 }),
    });
    fc.assert(
      fc.property(
        fc.array(packetArb, { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (packets, cuts) => {
          const stream = Buffer.concat(packets.map((p) => encodePacket(p.header, p.body)));
          const points = [...new Set(cuts.map((c) => (stream.length ? c % stream.length : 0)))].sort(
            (a, b) => a - b,
          );
          const decoder = new PacketDecoder();
          const out = [];
          let from = 0;
          for (const at of [...points, stream.length]) {
            out.push(...decoder.push(stream.subarray(from, at)));
            from = at;
          }
          expect(out.map((p) => ({ header: p.header, body: Buffer.from(p.body) }))).toEqual(
            packets.map((p) => ({ header: p.header, body: Buffer.from(p.body) })),
          );
          expect(decoder.pending).toBe(0);
        },
      ),
    );
  });

  it('random byte streams give packets or a ProtocolError, nothing else (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 10 }), (chunks) => {
        const d = new PacketDecoder();
        try {
          for (const c of chunks) for (const p of d.push(c)) expect(p.body.length).toBeGreaterThanOrEqual(0);
        } catch (err) {
          expect(err).toBeInstanceOf(ProtocolError);
        }
        expect(d.pending).toBeLessThanOrEqual(MESSAGE_MAX + 4);
      }),
    );
  });

  it('holds a partial packet without answering anything', () => {
    const p = encodePacket(header(), new Uint8Array(100));
    const d = new PacketDecoder();
    expect(d.push(p.subarray(0, 3))).toEqual([]);
    expect(d.push(p.subarray(3, 50))).toEqual([]);
    expect(d.pending).toBe(50);
    expect(d.push(p.subarray(50))).toHaveLength(1);
  });

  it('refuses a length above 16 MiB at the first 4 bytes, before buffering the rest', () => {
    const d = new PacketDecoder();
    const len = Buffer.alloc(4);
    len.writeUInt32BE(MESSAGE_MAX + 5);
    expect(() => d.push(len)).toThrow(ProtocolError);
    expect(d.pending).toBe(0);
    // The stream cannot be resynchronised: the decoder stays failed.
    expect(() => d.push(encodePacket(header()))).toThrow(ProtocolError);
  });

  it('refuses a length shorter than a header (a lying length)', () => {
    for (const n of [0, 4, 27]) {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(n);
      expect(() => new PacketDecoder().push(len)).toThrow(/packet length/);
    }
  });

  it('accepts exactly 16 MiB and refuses to encode more', () => {
    const body = new Uint8Array(MESSAGE_MAX - 24);
    const p = encodePacket(header(), body);
    expect(new PacketDecoder().push(p)[0].body.length).toBe(MESSAGE_MAX - 24);
    expect(() => encodePacket(header(), new Uint8Array(MESSAGE_MAX - 23))).toThrow(ProtocolError);
  });
});

describe('remote_error', () => {
  it('decodes code, domain, level and the message virsh prints', () => {
    const err = decodeRemoteError(
      encodeRemoteError({
        code: 42,
        domain: 10,
        message: "Domain not found: no domain with matching uuid 'x'",
      }),
    );
    expect(err).toBeInstanceOf(LibvirtError);
    expect([err.code, err.domain, err.level, err.message, err.local]).toEqual([
      42,
      10,
      2,
      "Domain not found: no domain with matching uuid 'x'",
      false,
    ]);
  });

  it('a null message gets a text naming the code; a truncated error body is an RPC error, not a throw', () => {
    expect(decodeRemoteError(encodeRemoteError({ code: 9, domain: 7, message: null })).message).toBe(
      'unknown error (code 9, domain 7)',
    );
    const body = encodeRemoteError({ code: 1, domain: 7, message: 'x' });
    const err = decodeRemoteError(body.subarray(0, 10));
    expect([err.code, err.local]).toEqual([39, true]);
    expect(err.message).toMatch(/^RPC error: undecodable error reply/);
  });
});
