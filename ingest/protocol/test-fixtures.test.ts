import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Notification, ValueList } from '../types.js';
import { DecodeError } from './decode-error.js';
import { copyValueList, PacketDecoder } from './decoder.js';
import {
  expectedRecords,
  FIXTURE_FOLDERS,
  FIXTURE_USER,
  FIXTURES_DIR,
  type FixtureFolder,
  fixturePackets,
  replayAt,
  retimePacket,
} from './test-fixtures.js';

/** The records' times exactly as collectd wrote them, whatever HERD_TEST_FIXTURE_AGE_DAYS says. */
const capturedTimes = (folder: FixtureFolder) =>
  readFileSync(join(FIXTURES_DIR, folder, 'expected.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l).time as number);

function decodedTimes(packets: Buffer[], folder: FixtureFolder): number[] {
  const times: number[] = [];
  const decoder = new PacketDecoder({
    securityLevel: folder === 'signed' ? 'sign' : 'none',
    users: { password: (u) => (u === FIXTURE_USER.username ? FIXTURE_USER.password : undefined) },
    onValues: (vl: ValueList) => times.push(copyValueList(vl).time),
    onNotification: (n: Notification) => times.push(n.time),
  });
  for (const p of packets) decoder.decode(p);
  return times;
}

const AGE_DAYS = Number(process.env.HERD_TEST_FIXTURE_AGE_DAYS ?? 0);

describe('captured packets, re-timed so that no test depends on the date', () => {
  for (const folder of FIXTURE_FOLDERS) {
    it(`${folder}: the packets and records read carry the capture's times less the suite's simulated age (${AGE_DAYS} days)`, () => {
      const captured = capturedTimes(folder);
      const records = expectedRecords(folder).map((r) => r.time);
      for (const [i, t] of records.entries()) expect(t).toBeCloseTo(captured[i] - AGE_DAYS * 86_400, 5);
      const decoded = decodedTimes(
        fixturePackets(folder).map((p) => p.bytes),
        folder,
      ).sort((a, b) => a - b);
      const wanted = [...records].sort((a, b) => a - b);
      expect(decoded).toHaveLength(wanted.length);
      for (const [i, t] of decoded.entries()) expect(Math.abs(t - wanted[i])).toBeLessThanOrEqual(1e-6);
      for (const p of fixturePackets(folder)) expect(readFileSync(p.path).equals(p.bytes)).toBe(true);
    });

    it(`${folder}: replayAt ends the capture now and moves every time by the same whole seconds`, () => {
      const now = Date.now() / 1000;
      const { packets, expected, shiftSeconds } = replayAt(folder, now);
      expect(Number.isInteger(shiftSeconds)).toBe(true);
      const latest = Math.max(...expected.map((r) => r.time));
      expect(latest).toBeLessThanOrEqual(now);
      expect(now - latest).toBeLessThan(1);
      const captured = capturedTimes(folder);
      for (const [i, r] of expected.entries()) expect(r.time - captured[i]).toBeCloseTo(shiftSeconds, 5);
      const decoded = decodedTimes(
        packets.map((p) => p.bytes),
        folder,
      ).sort((a, b) => a - b);
      const wanted = expected.map((r) => r.time).sort((a, b) => a - b);
      for (const [i, t] of decoded.entries()) expect(Math.abs(t - wanted[i])).toBeLessThanOrEqual(1e-6);
    });
  }

  it('a re-timed signed packet is signed again; the captured signature no longer matches its content', () => {
    const [packet] = fixturePackets('signed');
    const moved = retimePacket(packet.bytes, -30 * 86_400, 'signed');
    expect(decodedTimes([moved], 'signed')[0]).toBeCloseTo(
      decodedTimes([packet.bytes], 'signed')[0] - 30 * 86_400,
      5,
    );
    const stale = Buffer.from(moved);
    packet.bytes.copy(stale, 4, 4, 36);
    expect(() => decodedTimes([stale], 'signed')).toThrow(DecodeError);
  });
});
