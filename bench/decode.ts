/**
 * Decode-only throughput of the collectd protocol decoder on one core: the captured fixture packets
 * decoded over and over (a few million values a run), median of 5 runs, in values per second.
 * Figures go to bench/results/decode.json. Run with `npm run bench:decode`.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { copyValueList, PacketDecoder } from '../ingest/protocol/decoder.js';
import { PacketEncoder } from '../ingest/protocol/encoder.js';
import { FIXTURE_USER, type FixtureFolder, fixturePackets } from '../ingest/protocol/test-fixtures.js';
import type { ValueList } from '../ingest/types.js';

const TARGET_VALUES_PER_SECOND = 3_000_000;
const VALUES_PER_RUN = 4_000_000;
const RUNS = 5;

const UNSIGNED: FixtureFolder[] = ['plain', 'virt', 'virt-uuid', 'notifications'];
const HOSTS = 1000;

interface Scenario {
  name: string;
  packets: () => Buffer[];
  exact: boolean;
}

const scenarios: Scenario[] = [
  {
    name: 'unsigned fixture packets, numbers (the listener)',
    packets: () => fixtures(UNSIGNED),
    exact: false,
  },
  { name: `fixture value lists re-encoded for ${HOSTS} hosts, numbers`, packets: manyHosts, exact: false },
  {
    name: 'unsigned fixture packets, exact 64-bit integers (herd decode)',
    packets: () => fixtures(UNSIGNED),
    exact: true,
  },
  {
    name: 'signed fixture packets, HMAC verified, numbers',
    packets: () => fixtures(['signed']),
    exact: false,
  },
];

function fixtures(folders: FixtureFolder[]): Buffer[] {
  return folders.flatMap((folder) => fixturePackets(folder).map((p) => p.bytes));
}

/** Many distinct host names, as a real fleet sends: each host sends the plain capture's value lists. */
function manyHosts(): Buffer[] {
  const lists: ValueList[] = [];
  const decoder = new PacketDecoder({ exact: true, onValues: (vl) => lists.push(copyValueList(vl)) });
  for (const packet of fixtures(['plain'])) decoder.decode(packet);
  const packets: Buffer[] = [];
  const encoder = new PacketEncoder({ onPacket: (p) => packets.push(p) });
  for (let host = 1; host <= HOSTS; host++) {
    // One packet's worth of value lists per host, from a different place in the capture each time.
    const start = (host * 29) % lists.length;
    for (let i = 0; i < 27; i++)
      encoder.addValues({ ...lists[(start + i) % lists.length], host: `host-${host}` });
    encoder.flush();
  }
  return packets;
}

function measure(scenario: Scenario) {
  const packets = scenario.packets();
  let values = 0;
  let notifications = 0;
  const decoder = new PacketDecoder({
    exact: scenario.exact,
    users: { password: (user) => (user === FIXTURE_USER.username ? FIXTURE_USER.password : undefined) },
    onValues: (vl) => {
      values += vl.values.length;
    },
    onNotification: () => {
      notifications++;
    },
  });
  const decodeAll = () => {
    for (const packet of packets) decoder.decode(packet);
  };

  decodeAll();
  const valuesPerPass = values;
  const notificationsPerPass = notifications;
  const bytesPerPass = packets.reduce((sum, p) => sum + p.length, 0);
  const passes = Math.ceil(VALUES_PER_RUN / valuesPerPass);
  // Warm-up: let the JIT settle before timing.
  for (let i = 0; i < Math.ceil(passes / 4); i++) decodeAll();

  const runs: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    values = 0;
    const started = process.hrtime.bigint();
    for (let i = 0; i < passes; i++) decodeAll();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    runs.push(values / seconds);
  }
  const median = [...runs].sort((a, b) => a - b)[Math.floor(RUNS / 2)];
  const packetsPerSecond = (median / valuesPerPass) * packets.length;
  return {
    scenario: scenario.name,
    packets: packets.length,
    valuesPerPass,
    notificationsPerPass,
    valuesPerRun: valuesPerPass * passes,
    runsValuesPerSecond: runs.map(Math.round),
    medianValuesPerSecond: Math.round(median),
    medianPacketsPerSecond: Math.round(packetsPerSecond),
    medianMegabytesPerSecond: Number(((packetsPerSecond * bytesPerPass) / packets.length / 1e6).toFixed(1)),
  };
}

const results = scenarios.map((scenario) => {
  const result = measure(scenario);
  process.stdout.write(
    `${result.scenario}: ${(result.medianValuesPerSecond / 1e6).toFixed(2)} M values/s ` +
      `(${result.medianPacketsPerSecond} packets/s, ${result.medianMegabytesPerSecond} MB/s; runs ${result.runsValuesPerSecond.join(', ')})\n`,
  );
  return result;
});

const headline = results[0].medianValuesPerSecond;
const report = {
  benchmark: 'decode',
  date: new Date().toISOString(),
  node: process.version,
  cpu: cpus()[0]?.model ?? 'unknown',
  runs: RUNS,
  targetValuesPerSecond: TARGET_VALUES_PER_SECOND,
  medianValuesPerSecond: headline,
  meetsTarget: headline >= TARGET_VALUES_PER_SECOND,
  results,
};
await mkdir(new URL('./results/', import.meta.url), { recursive: true });
await writeFile(new URL('./results/decode.json', import.meta.url), `${JSON.stringify(report, null, 2)}\n`);
process.stdout.write(
  `median ${(headline / 1e6).toFixed(2)} M values/s, target ${TARGET_VALUES_PER_SECOND / 1e6} M: ${report.meetsTarget ? 'met' : 'NOT met'}\n`,
);
