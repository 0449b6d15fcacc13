import dgram from 'node:dgram';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { expect, test } from 'vitest';
import { copyValueList, PacketDecoder } from '../ingest/protocol/decoder.js';
import type { ValueList } from '../ingest/types.js';
import { createLogger } from '../lib/log.js';
import { collectdInstalled, putval, startTraffic } from './demo-traffic.js';
import { hostValueLists } from './fleet-signal.js';

const HOST = { name: 'demo-model-h1', cpus: 6, memoryMiB: 24_576 };

test('PUTVAL: identifiers as collectd names them, counters whole', () => {
  const [vl] = hostValueLists(HOST, 1_796_256_000.4, 2).map((n) => n.vl);
  expect(putval(vl)).toMatch(/^PUTVAL "demo-model-h1\/cpu-0\/cpu-user" interval=2 1796256000\.400:\d+$/);
});

test.skipIf(!collectdInstalled())(
  "a real collectd carries the simulated host's own figures, from the model the history comes from",
  async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'herd-demo-traffic-'));
    const received: ValueList[] = [];
    const decoder = new PacketDecoder({ onValues: (vl) => received.push(copyValueList(vl)) });
    const udp = dgram.createSocket('udp4');
    udp.on('message', (packet) => decoder.decode(packet));
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    const traffic = await startTraffic({
      hosts: [HOST],
      guests: async () => [],
      port: (udp.address() as AddressInfo).port,
      intervalSeconds: 1,
      collectd: 'real',
      dir,
      log: createLogger('silent'),
    });
    try {
      await expect
        .poll(() => new Set(received.filter((v) => v.plugin === 'memory').map((v) => v.time)).size, {
          timeout: 20_000,
        })
        .toBeGreaterThanOrEqual(2);
      const mine = received.filter((v) => v.host === HOST.name);
      expect(mine.length).toBe(received.length);
      // The simulated host's 6 CPUs (not this machine's), its memory adding up to its 24 GiB.
      expect(new Set(mine.filter((v) => v.plugin === 'cpu').map((v) => v.pluginInstance)).size).toBe(6);
      const time = mine.find((v) => v.plugin === 'memory')!.time;
      const memory = mine.filter((v) => v.plugin === 'memory' && v.time === time);
      const total = memory.reduce((sum, v) => sum + Number(v.values[0]), 0) / 1024 / 1024;
      expect(total).toBeCloseTo(HOST.memoryMiB, 0);
      // Every value is the model's at its time: the backfill (same model) and the live figures agree.
      for (const v of mine) {
        const model = hostValueLists(HOST, v.time, 1).find(
          (m) =>
            m.vl.plugin === v.plugin &&
            m.vl.pluginInstance === v.pluginInstance &&
            m.vl.type === v.type &&
            m.vl.typeInstance === v.typeInstance,
        );
        expect(model, `${v.plugin}/${v.type}-${v.typeInstance}`).toBeDefined();
        // collectd keeps times to 2^-30 s and counters whole: equal to a millionth, or to the rounding.
        for (const [i, value] of v.values.entries()) {
          const want = Number(model!.vl.values[i]);
          expect(Math.abs(Number(value) - want), `${v.plugin}/${v.type}`).toBeLessThanOrEqual(
            1e-6 * Math.abs(want) + 1,
          );
        }
      }
    } finally {
      await traffic.stop();
      udp.close();
      await rm(dir, { recursive: true, force: true });
    }
  },
  60_000,
);
