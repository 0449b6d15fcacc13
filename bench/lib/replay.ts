/**
 * Replayed collectd traffic for benchmarks: the captured packets of ../shared/fixtures/collectd/plain,
 * re-encoded once per simulated host with that host's name. Each packet's TIME_HR parts are patched at
 * send time, so every packet sent carries points no other packet carries (the stores would otherwise merge
 * duplicates and hide loss).
 */
import { copyValueList, PacketDecoder } from '../../ingest/protocol/decoder.js';
import { encodeValueLists } from '../../ingest/protocol/encoder.js';
import { fixturePackets } from '../../ingest/protocol/test-fixtures.js';
import type { ValueList } from '../../ingest/types.js';

const PART_TIME_HR = 0x0008;
const HR = 2 ** 30;

export interface ReplayPacket {
  bytes: Buffer;
  /** Byte offsets of the 8-byte TIME_HR values in `bytes`, and the times encoded there at build. */
  timeOffsets: number[];
  times: bigint[];
  /** Finite values the packet carries (what a store can keep). */
  values: number;
}

export interface Replay {
  hosts: number;
  /** packets[host][i] */
  packets: ReplayPacket[][];
  /** Span of the capture's times (s); shifting by more than this keeps points distinct. */
  span: number;
}

export function buildReplay(
  hosts: number,
  hostName = (i: number) => `bench-host-${String(i).padStart(5, '0')}`,
): Replay {
  const lists: ValueList[] = [];
  const decoder = new PacketDecoder({ onValues: (vl) => lists.push(copyValueList(vl)) });
  for (const p of fixturePackets('plain')) decoder.decode(p.bytes);
  const t0 = Math.min(...lists.map((vl) => vl.time));
  const t1 = Math.max(...lists.map((vl) => vl.time));
  const packets: ReplayPacket[][] = [];
  for (let h = 0; h < hosts; h++) {
    const name = hostName(h);
    // times relative to the capture start; the sender adds the round's base time
    const encoded = encodeValueLists(lists.map((vl) => ({ ...vl, host: name, time: vl.time - t0 + 1 })));
    packets.push(
      encoded.map((bytes) => {
        const offsets = timeOffsets(bytes);
        return {
          bytes,
          timeOffsets: offsets,
          times: offsets.map((o) => bytes.readBigUInt64BE(o)),
          values: finiteValues(bytes),
        };
      }),
    );
  }
  return { hosts, packets, span: Math.ceil(t1 - t0) + 2 };
}

/** Sets every TIME_HR in the packet to its built time plus `baseSeconds` (in place) and returns the bytes. */
export function stampTimes(p: ReplayPacket, baseSeconds: number): Buffer {
  const base = BigInt(Math.round(baseSeconds * HR));
  for (let i = 0; i < p.timeOffsets.length; i++)
    p.bytes.writeBigUInt64BE(p.times[i] + base, p.timeOffsets[i]);
  return p.bytes;
}

function timeOffsets(bytes: Buffer): number[] {
  const out: number[] = [];
  for (let pos = 0; pos + 4 <= bytes.length; ) {
    const type = bytes.readUInt16BE(pos);
    const length = bytes.readUInt16BE(pos + 2);
    if (type === PART_TIME_HR) out.push(pos + 4);
    pos += length;
  }
  return out;
}

function finiteValues(bytes: Buffer): number {
  let n = 0;
  const decoder = new PacketDecoder({
    onValues: (vl) => {
      for (const v of vl.values) if (Number.isFinite(Number(v))) n++;
    },
  });
  decoder.decode(bytes);
  return n;
}
