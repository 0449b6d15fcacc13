/**
 * PostgreSQL failover under a real `herd serve` (every role): a primary and a streaming standby
 * (lib/testing/pg-replica.ts), herd on the multi-host DATABASE_URL `…@primary,standby/…?target_session_attrs=read-write`,
 * `--writers` API clients creating pools as fast as answered. The primary is stopped as in a crash (`immediate`),
 * the standby promoted `--promote-after` seconds later (what a failover manager takes to decide), and the writes
 * go on. Measured per replication mode (synchronous: synchronous_standby_names names the standby; asynchronous:
 * it does not), over `--rounds` rounds each: the seconds without a write (last 201 before the stop → first 201
 * after), the seconds from the promotion to herd's first write, the answers meanwhile, and the writes answered 201
 * that the promoted standby does not have (lost). Each mode also with the standby `--behind` seconds behind at the
 * crash (the primary's WAL sender paused: a slow link), which is where asynchronous replication loses writes.
 * Writes bench/results/failover.json.
 *
 *   npm run bench:failover [-- --rounds 2 --writers 16 --promote-after 2 --behind 1 --run 5]
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { herdEnvOnPair, startPgReplicaPair } from '../lib/testing/pg-replica.js';
import { apiToken, sleep, startHerd } from './lib/herd-fleet.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '2' },
    writers: { type: 'string', default: '16' },
    'promote-after': { type: 'string', default: '2' },
    behind: { type: 'string', default: '1' },
    run: { type: 'string', default: '5' },
  },
});
const ROOT = path.resolve(import.meta.dirname, '..');

interface Round {
  writesBeforeStop: number;
  /** Of those, the writes answered while the standby was held behind (asynchronous: at risk). */
  writesWhileBehind: number;
  writesAfterPromotion: number;
  secondsWithoutWrites: number;
  secondsFromPromotionToFirstWrite: number;
  /** Writes answered 201 that the promoted standby does not have. */
  lost: number;
  /** Status counts (or "connection error") of the writes not answered 201 from the stop on. */
  answersMeanwhile: Record<string, number>;
  /** How far the standby was behind at the last look before the stop (pg_stat_replication). */
  replayLagBytesBeforeStop: number;
  herdExited: boolean;
}

async function round(synchronous: boolean, behindSeconds: number, dir: string): Promise<Round> {
  const pair = await startPgReplicaPair({ synchronous });
  const herd = await startHerd(herdEnvOnPair(pair, dir, 'failover-bench-admin'), []).catch(async (err) => {
    await pair.close();
    throw err;
  });
  let running = true;
  try {
    const token = await apiToken(herd.http!, 'failover-bench-admin');
    const post = (body: unknown) =>
      fetch(`${herd.http}/api/v1/pools`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const rack = (await (await post({ name: 'bench-rack', kind: 'hardware', parentId: 1 })).json()) as {
      id: number;
    };

    const acked: Array<{ id: number; at: number }> = [];
    const failed: Array<{ key: string; at: number }> = [];
    let n = 0;
    const writer = async () => {
      while (running) {
        const res = await post({ name: `bench-${n++}`, kind: 'vm', parentId: rack.id }).catch(
          (err: Error) => err,
        );
        const at = Date.now();
        if (res instanceof Error) {
          failed.push({ key: 'connection error', at });
          await sleep(50);
          continue;
        }
        const body = (await res.json()) as { id?: number };
        if (res.status === 201) acked.push({ id: body.id!, at });
        else {
          failed.push({ key: String(res.status), at });
          await sleep(50);
        }
      }
    };
    const writers = Array.from({ length: Number(args.writers) }, writer);
    await sleep(Number(args.run) * 1000);

    const watch = new pg.Client(pair.primary.url);
    await watch.connect();
    const lag = await watch.query<{ lag: string }>(
      'SELECT pg_current_wal_lsn() - replay_lsn AS lag FROM pg_stat_replication',
    );
    await watch.end();
    // The standby behind: nothing sent to it for the last seconds before the crash (synchronous: the commits wait
    // for it meanwhile; asynchronous: they are answered, and what the standby did not receive is gone).
    let behindFrom = Number.POSITIVE_INFINITY;
    if (behindSeconds > 0) {
      await pair.pauseReplication();
      behindFrom = Date.now();
      await sleep(behindSeconds * 1000);
    }
    const stoppedAt = Date.now();
    await pair.stopPrimary('immediate');
    // Answers that came between the stop's start and its end were committed before the crash.
    const downAt = Date.now();
    await sleep(Number(args['promote-after']) * 1000);
    await pair.promoteStandby();
    const promotedAt = Date.now();
    while (!acked.some((a) => a.at > promotedAt) && Date.now() - promotedAt < 60_000) await sleep(20);
    await sleep(Number(args.run) * 1000);
    running = false;
    await Promise.all(writers);

    const before = acked.filter((a) => a.at <= downAt);
    const firstAfter = acked.find((a) => a.at > downAt);
    const check = new pg.Client(pair.standby.url);
    await check.connect();
    const { rows } = await check.query<{ n: string }>(
      'SELECT count(*) AS n FROM pools WHERE id = ANY($1::int[])',
      [acked.map((a) => a.id)],
    );
    await check.end();
    const answersMeanwhile: Record<string, number> = {};
    for (const f of failed.filter((f) => f.at > stoppedAt))
      answersMeanwhile[f.key] = (answersMeanwhile[f.key] ?? 0) + 1;
    const lastBefore = before.at(-1)?.at ?? downAt;
    return {
      writesBeforeStop: before.length,
      writesWhileBehind: before.filter((a) => a.at >= behindFrom).length,
      writesAfterPromotion: acked.filter((a) => a.at > promotedAt).length,
      secondsWithoutWrites: firstAfter ? round1((firstAfter.at - lastBefore) / 1000) : -1,
      secondsFromPromotionToFirstWrite: firstAfter ? round1((firstAfter.at - promotedAt) / 1000) : -1,
      lost: acked.length - Number(rows[0]!.n),
      answersMeanwhile,
      replayLagBytesBeforeStop: Number(lag.rows[0]?.lag ?? 0),
      herdExited: herd.exited(),
    };
  } finally {
    running = false;
    if (!herd.exited()) {
      herd.child.kill('SIGTERM');
      await new Promise((r) => herd.child.once('exit', r));
    }
    await pair.close();
  }
}

const round1 = (x: number) => Math.round(x * 100) / 100;

async function main() {
  const behind = Number(args.behind);
  const scenarios = [
    { name: 'synchronous', synchronous: true, behind: 0 },
    { name: 'asynchronous', synchronous: false, behind: 0 },
    ...(behind > 0
      ? [
          { name: `synchronous, standby ${behind} s behind`, synchronous: true, behind },
          { name: `asynchronous, standby ${behind} s behind`, synchronous: false, behind },
        ]
      : []),
  ];
  const results: Record<string, Round[]> = Object.fromEntries(scenarios.map((s) => [s.name, []]));
  for (let i = 0; i < Number(args.rounds); i++) {
    for (const scenario of scenarios) {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'herd-bench-failover-'));
      try {
        const r = await round(scenario.synchronous, scenario.behind, dir);
        results[scenario.name]!.push(r);
        console.log(scenario.name, JSON.stringify(r));
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
  }
  const summary = Object.fromEntries(
    Object.entries(results).map(([mode, rounds]) => [
      mode,
      {
        rounds: rounds.length,
        lostTotal: rounds.reduce((s, r) => s + r.lost, 0),
        writesTotal: rounds.reduce((s, r) => s + r.writesBeforeStop, 0),
        secondsWithoutWritesMax: Math.max(...rounds.map((r) => r.secondsWithoutWrites)),
        secondsFromPromotionToFirstWriteMax: Math.max(
          ...rounds.map((r) => r.secondsFromPromotionToFirstWrite),
        ),
        non503Answers: rounds.reduce(
          (s, r) =>
            s + Object.entries(r.answersMeanwhile).reduce((t, [k, v]) => t + (k === '503' ? 0 : v), 0),
          0,
        ),
        herdExited: rounds.some((r) => r.herdExited),
      },
    ]),
  );
  await mkdir(path.join(ROOT, 'bench/results'), { recursive: true });
  const file = path.join(ROOT, 'bench/results/failover.json');
  await writeFile(
    file,
    `${JSON.stringify(
      {
        date: new Date().toISOString(),
        machine: { cpus: os.cpus().length, node: process.version },
        settings: {
          writers: Number(args.writers),
          promoteAfterSeconds: Number(args['promote-after']),
          standbyBehindSeconds: behind,
          runSeconds: Number(args.run),
          stop: 'pg_ctl stop -m immediate',
        },
        summary,
        rounds: results,
      },
      null,
      2,
    )}\n`,
  );
  console.log(JSON.stringify(summary, null, 2));
  console.log(`wrote ${path.relative(ROOT, file)}`);
}

await main();
