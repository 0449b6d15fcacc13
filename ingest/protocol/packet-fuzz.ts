/**
 * Mutated collectd packets for fuzzing (the pipeline's property test, `npm run bench:faults`): captured packets
 * from ../shared/fixtures/collectd with bit flips, truncation, lying part lengths, swapped part types and noise,
 * signed ones sometimes signed again over the changed content; and how a fresh decoder judges one.
 */
import type { ValueList } from '../types.js';
import type { UserLookup } from './auth-file.js';
import { DecodeError } from './decode-error.js';
import { copyValueList, PacketDecoder } from './decoder.js';
import { PacketEncoder } from './encoder.js';
import { hmacSha256 } from './packet-crypto.js';
import type { SecurityLevel } from './parts.js';
import { FIXTURE_USER, fixturePackets } from './test-fixtures.js';

/** Largest UDP payload over IPv4. */
export const MAX_DATAGRAM = 65_507;

/** The captured packets of every capture (six of each), and some of the plain ones encrypted. */
export function fuzzSeeds(): Buffer[] {
  const lists: ValueList[] = [];
  const decoder = new PacketDecoder({ onValues: (vl) => lists.push(copyValueList(vl)) });
  for (const p of fixturePackets('plain').slice(0, 4)) decoder.decode(p.bytes);
  const encrypted: Buffer[] = [];
  const encoder = new PacketEncoder({
    onPacket: (p) => encrypted.push(p),
    security: { level: 'encrypt', ...FIXTURE_USER },
  });
  for (const vl of lists) encoder.addValues(vl);
  encoder.flush();
  return [
    ...(['plain', 'virt', 'virt-uuid', 'notifications', 'signed'] as const).flatMap((folder) =>
      fixturePackets(folder)
        .slice(0, 6)
        .map((p) => p.bytes),
    ),
    ...encrypted,
  ];
}

/** The fixture user as the decoder looks users up. */
export const FUZZ_USERS: UserLookup = {
  password: (username) => (username === FIXTURE_USER.username ? FIXTURE_USER.password : undefined),
};

/** Where each part header of `b` starts, as far as the lengths can be followed. */
export function partStarts(b: Buffer): number[] {
  const starts: number[] = [];
  for (let pos = 0; pos + 4 <= b.length; ) {
    starts.push(pos);
    const length = b.readUInt16BE(pos + 2);
    if (length < 4) break;
    pos += length;
  }
  return starts;
}

/** Bytes from a small deterministic generator: large random packets without building them bytewise. */
export function noise(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  let x = seed | 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** xorshift32: `next(below)` is an integer in [0, below); the same sequence for the same seed. */
export function rng(seed: number): (below: number) => number {
  let x = seed | 1;
  return (below: number) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % below;
  };
}

const PART_TYPES = [
  0x0000, 0x0001, 0x0002, 0x0003, 0x0004, 0x0005, 0x0006, 0x0007, 0x0008, 0x0009, 0x0100, 0x0101, 0x0200,
  0x0210, 0xffff,
];

/**
 * A seed packet with 1–3 of: bit flip, truncation, lying part length (0, 1–3, 0xffff, off by a few), swapped part
 * type, noise inserted; signed ones sometimes signed again over the changed content.
 */
export function fuzzed(seeds: readonly Buffer[], next: (below: number) => number): Buffer {
  let b = Buffer.from(seeds[next(seeds.length)]);
  for (let m = 1 + next(3); m > 0 && b.length > 0; m--) {
    const starts = partStarts(b);
    const part = starts[next(starts.length)] ?? 0;
    switch (next(5)) {
      case 0:
        b[next(b.length)] ^= 1 << next(8);
        break;
      case 1:
        b = b.subarray(0, next(b.length + 1));
        break;
      case 2:
        if (part + 4 <= b.length) {
          const lies = [0, 1 + next(3), 0xffff, Math.max(0, b.readUInt16BE(part + 2) + next(9) - 4)];
          b.writeUInt16BE(lies[next(lies.length)] & 0xffff, part + 2);
        }
        break;
      case 3:
        if (part + 2 <= b.length) b.writeUInt16BE(PART_TYPES[next(PART_TYPES.length)], part);
        break;
      default: {
        const at = next(b.length + 1);
        b = Buffer.concat([b.subarray(0, at), noise(1 + next(16), next(1 << 30)), b.subarray(at)]);
      }
    }
  }
  // Valid signature, wrong content: what a peer with the password (or a replay tool) could send.
  if (b.length > 36 && b.readUInt16BE(0) === 0x0200 && next(2) === 0)
    hmacSha256(FIXTURE_USER.password, b.subarray(36)).copy(b, 4);
  return b;
}

/** How a fresh decoder judges a packet: what it emits before it stops, and why it stops. */
export function judge(bytes: Buffer, o: { securityLevel: SecurityLevel; users?: UserLookup }) {
  let valueLists = 0;
  let notifications = 0;
  const decoder = new PacketDecoder({
    onValues: () => valueLists++,
    onNotification: () => notifications++,
    ...o,
  });
  let outcome: 'ok' | 'auth' | 'parse' = 'ok';
  try {
    decoder.decode(bytes);
  } catch (err) {
    outcome = err instanceof DecodeError && err.kind === 'auth' ? 'auth' : 'parse';
  }
  return { outcome, valueLists, notifications };
}
