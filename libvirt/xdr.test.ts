import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeDomainEvent, decodeRet, encodeArgs, Limits, P, Proc, readDomain } from './procedures.js';
import { type TypedParam, uuidToString, XdrError, XdrReader, XdrWriter } from './xdr.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('XDR primitives', () => {
  it('encodes as RFC 4506 does: big-endian, 4-byte units, padded strings and opaque', () => {
    const w = new XdrWriter(4);
    w.int(-2)
      .uint(0xfffffffe)
      .hyper(-3n)
      .uhyper(2n ** 64n - 1n)
      .bool(true)
      .double(1.5);
    w.string('abcde')
      .opaque(new Uint8Array([1, 2]), 8)
      .opaqueFixed(new Uint8Array([9]));
    w.optional(null, (x, v: number) => x.int(v)).optional(7, (x, v) => x.int(v));
    expect(hex(w.bytes())).toBe(
      [
        'fffffffe',
        'fffffffe',
        'fffffffffffffffd',
        'ffffffffffffffff',
        '00000001',
        '3ff8000000000000',
        '00000005',
        '6162636465000000',
        '00000002',
        '01020000',
        '09000000',
        '00000000',
        '00000001',
        '00000007',
      ].join(''),
    );
    const r = new XdrReader(w.bytes());
    expect([r.int(), r.uint(), r.hyper(), r.uhyper(), r.bool(), r.double()]).toEqual([
      -2,
      0xfffffffe,
      -3n,
      2n ** 64n - 1n,
      true,
      1.5,
    ]);
    expect(r.string()).toBe('abcde');
    expect([...r.opaque(8)]).toEqual([1, 2]);
    expect([...r.opaqueFixed(1)]).toEqual([9]);
    expect(r.optional((x) => x.int())).toBeNull();
    expect(r.optional((x) => x.int())).toBe(7);
    r.end();
  });

  it('round-trips every typed parameter type', () => {
    const params: TypedParam[] = [
      { field: 'i', type: 'int', value: -5 },
      { field: 'u', type: 'uint', value: 4_000_000_000 },
      { field: 'l', type: 'llong', value: -(2n ** 62n) },
      { field: 'ul', type: 'ullong', value: 2n ** 64n - 2n },
      { field: 'd', type: 'double', value: -0.25 },
      { field: 'b', type: 'boolean', value: true },
      { field: 's', type: 'string', value: 'héllo' },
    ];
    const w = new XdrWriter().typedParams(params, 16);
    const r = new XdrReader(w.bytes());
    expect(r.typedParams(16)).toEqual(params);
    r.end();
  });

  it('reads and writes UUIDs as 16 bytes', () => {
    const uuid = '6695eb01-f6a4-8304-79aa-97f2502e193f';
    const bytes = new XdrWriter().uuid(uuid).bytes();
    expect(bytes.length).toBe(16);
    expect(new XdrReader(bytes).uuid()).toBe(uuid);
    expect(() => new XdrWriter().uuid('not-a-uuid')).toThrow(XdrError);
  });

  it('reads char arrays (4 bytes a char) up to the first NUL', () => {
    const w = new XdrWriter();
    for (const c of 'x86_64') w.int(c.charCodeAt(0));
    for (let i = 6; i < 32; i++) w.int(0);
    const r = new XdrReader(w.bytes());
    expect(r.charArray(32)).toBe('x86_64');
    r.end();
  });

  it('refuses values out of range rather than wrapping them', () => {
    expect(() => new XdrWriter().int(2 ** 31)).toThrow(XdrError);
    expect(() => new XdrWriter().uint(-1)).toThrow(XdrError);
    expect(() => new XdrWriter().uhyper(-1n)).toThrow(XdrError);
    expect(() => new XdrWriter().hyper(2n ** 63n)).toThrow(XdrError);
    expect(() => new XdrWriter().string('x'.repeat(9), 8)).toThrow(XdrError);
    expect(() => new XdrWriter().array([1, 2, 3], 2, (x, v) => x.int(v))).toThrow(XdrError);
  });
});

describe('XDR property tests', () => {
  const param: fc.Arbitrary<TypedParam> = fc.oneof(
    fc.record({ field: fc.string(), type: fc.constant('int' as const), value: fc.integer() }),
    fc.record({
      field: fc.string(),
      type: fc.constant('uint' as const),
      value: fc.integer({ min: 0, max: 0xffffffff }),
    }),
    fc.record({
      field: fc.string(),
      type: fc.constant('llong' as const),
      value: fc.bigInt(-(2n ** 63n), 2n ** 63n - 1n),
    }),
    fc.record({
      field: fc.string(),
      type: fc.constant('ullong' as const),
      value: fc.bigInt(0n, 2n ** 64n - 1n),
    }),
    fc.record({
      field: fc.string(),
      type: fc.constant('double' as const),
      value: fc.double({ noNaN: true }),
    }),
    fc.record({ field: fc.string(), type: fc.constant('boolean' as const), value: fc.boolean() }),
    fc.record({
      field: fc.string(),
      type: fc.constant('string' as const),
      value: fc.string({ unit: 'grapheme' }),
    }),
  );

  it('decode(encode(params)) is the identity', () => {
    fc.assert(
      fc.property(fc.array(param, { maxLength: 20 }), (params) => {
        const r = new XdrReader(new XdrWriter().typedParams(params, 64).bytes());
        expect(r.typedParams(64)).toEqual(params);
        r.end();
      }),
    );
  });

  it('every truncation of a valid encoding is an XdrError, never another exception', () => {
    fc.assert(
      fc.property(fc.array(param, { minLength: 1, maxLength: 5 }), fc.nat(), (params, cut) => {
        const bytes = new XdrWriter().typedParams(params, 64).bytes();
        const short = bytes.subarray(0, cut % bytes.length);
        expect(() => new XdrReader(short).typedParams(64)).toThrow(XdrError);
      }),
    );
  });

  it('random bytes decode to a value or an XdrError (no RangeError, no huge allocation)', () => {
    const decoders = Object.values(P).map((p) => (b: Uint8Array) => decodeRet(p, b));
    const events = [318, 319, 359, 363].map((proc) => (b: Uint8Array) => decodeDomainEvent(proc, b));
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => {
        for (const decode of [...decoders, ...events]) {
          try {
            decode(bytes);
          } catch (err) {
            expect(err).toBeInstanceOf(XdrError);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('domain references round-trip', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.integer(),
        (name, u, id) => {
          const dom = { name, uuid: uuidToString(u), id };
          const bytes = encodeArgs(P.domainSuspend, dom);
          const r = new XdrReader(bytes);
          expect(readDomain(r)).toEqual(dom);
          r.end();
        },
      ),
    );
  });
});

describe('domain event messages (remote_domain_event_callback_*_msg)', () => {
  const dom = { name: 'web1', uuid: '11111111-2222-4333-8444-555555555555', id: 7 };
  const withDom = (callbackId: number) => {
    const w = new XdrWriter().int(callbackId);
    w.string(dom.name).uuid(dom.uuid).int(dom.id);
    return w;
  };

  it('decodes lifecycle, reboot, migration iteration and job completed', () => {
    expect(decodeDomainEvent(Proc.DOMAIN_EVENT_CALLBACK_LIFECYCLE, withDom(3).int(5).int(1).bytes())).toEqual(
      {
        kind: 'lifecycle',
        callbackId: 3,
        domain: dom,
        event: 5,
        eventName: 'stopped',
        detail: 1,
      },
    );
    expect(decodeDomainEvent(Proc.DOMAIN_EVENT_CALLBACK_REBOOT, withDom(4).bytes())).toEqual({
      kind: 'reboot',
      callbackId: 4,
      domain: dom,
    });
    expect(
      decodeDomainEvent(Proc.DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION, withDom(5).int(2).bytes()),
    ).toEqual({
      kind: 'migration-iteration',
      callbackId: 5,
      domain: dom,
      iteration: 2,
    });
    const params: TypedParam[] = [
      { field: 'operation', type: 'int', value: 5 },
      { field: 'data_total', type: 'ullong', value: 1n << 33n },
    ];
    const done = withDom(6).typedParams(params, 64).bytes();
    expect(decodeDomainEvent(Proc.DOMAIN_EVENT_CALLBACK_JOB_COMPLETED, done)).toEqual({
      kind: 'job-completed',
      callbackId: 6,
      domain: dom,
      params,
    });
  });

  it('refuses a message with bytes after its last field, or with more job parameters than allowed', () => {
    expect(() => decodeDomainEvent(Proc.DOMAIN_EVENT_CALLBACK_REBOOT, withDom(1).int(0).bytes())).toThrow(
      XdrError,
    );
    const many = Array.from(
      { length: 65 },
      (_, i): TypedParam => ({ field: `f${i}`, type: 'int', value: i }),
    );
    const body = withDom(1).typedParams(many, 100).bytes();
    expect(() => decodeDomainEvent(Proc.DOMAIN_EVENT_CALLBACK_JOB_COMPLETED, body)).toThrow(
      /exceeds its maximum 64/,
    );
  });
});

describe('hostile lengths', () => {
  it('a string whose length runs past the buffer fails before allocating', () => {
    const w = new XdrWriter().uint(0x7fffffff);
    expect(() => new XdrReader(w.bytes()).string(2 ** 31)).toThrow(/truncated string/);
  });

  it('a string longer than its field maximum fails on the length alone', () => {
    const w = new XdrWriter().uint(Limits.STRING + 1);
    expect(() => new XdrReader(w.bytes()).string()).toThrow(/exceeds its maximum 4194304/);
  });

  it('an array count above its maximum, or beyond what the bytes can hold, fails at once', () => {
    expect(() =>
      new XdrReader(new XdrWriter().uint(Limits.DOMAIN_LIST + 1).bytes()).array(
        Limits.DOMAIN_LIST,
        readDomain,
      ),
    ).toThrow(/exceeds its maximum 16384/);
    expect(() =>
      new XdrReader(new XdrWriter().uint(1000).bytes()).array(Limits.DOMAIN_LIST, readDomain),
    ).toThrow(/cannot fit/);
  });

  it('an unknown typed-parameter type and a bool that is not 0/1 are errors', () => {
    const w = new XdrWriter().string('f').int(99);
    expect(() => new XdrReader(w.bytes()).typedParam()).toThrow(/unknown type 99/);
    expect(() => new XdrReader(new XdrWriter().int(2).bytes()).bool()).toThrow(/bool is 2/);
  });

  it('a reply with bytes left over is refused', () => {
    const body = new XdrWriter().string('host').int(0).bytes();
    expect(() => decodeRet(P.connectGetHostname, body)).toThrow(/4 bytes left over/);
  });

  it('an event message of an unknown procedure is not decoded', () => {
    expect(decodeDomainEvent(Proc.DOMAIN_EVENT_CALLBACK_LIFECYCLE + 1000, new Uint8Array(0))).toBeNull();
  });
});
