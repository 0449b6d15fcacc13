import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LATENESS_SECONDS } from '../api/metrics/metrics.service.js';
import { CHROMIUM, compileDashboard } from '../lib/testing/browser.js';
import { signIn } from '../lib/testing/dashboard-pages.js';
import {
  exclusiveCpu,
  type GuestSignals,
  guestCmdline,
  HOST_FROM_GUEST,
  sharedHypervisor,
  startGuestSignals,
} from '../lib/testing/hypervisor.js';
import {
  realFleet,
  sharedVolume,
  startGate,
  startHostCollectd,
  startTestHerd,
  type TestHerd,
  waitAtGate,
} from '../lib/testing/real-herd.js';

/**
 * The VM page's graphs of a real guest, in Debian's chromium: herd (every role) on the suite's real libvirtd, the
 * real collectd's virt plugin (2 s interval) → herd's ingest → InfluxDB → the page's vega-lite graphs. The guest
 * idles ~30 s (at a gate the test opens), then keeps its vCPU busy, writes and reads its volume disk, fetches from a loopback HTTP server
 * over qemu's user network and pings over a tap NIC (network `ethernet`: the user network has no host-side
 * counters, so collectd sees no traffic on it). The graphs' own data (the drawn vega view's rows) must show it.
 */
const run = promisify(execFile);
const hv = sharedHypervisor();
const host = hv.hosts[1];
const IDLE_SECONDS = 30;

let dir: string;
let th: TestHerd;
let browser: Browser;
let signals: GuestSignals;
let blobs: http.Server;
let blobCalls = 0;
let collectd: { stop(): Promise<void> } | undefined;
let disk: string;
let vm: { id: number; uuid: string };
let readyAt = 0;
let gate: Awaited<ReturnType<typeof startGate>>;
let release: (() => Promise<void>) | undefined;
const pageErrors: string[] = [];

beforeAll(async () => {
  compileDashboard();
  dir = await mkdtemp(path.join(os.tmpdir(), 'herd-guest-graphs-'));
  signals = await startGuestSignals();
  gate = await startGate();
  // What the guest downloads in its busy phase: 256 KiB a request.
  const blob = Buffer.alloc(256 * 1024, 7);
  blobs = http.createServer((req, res) => {
    blobCalls++;
    req.resume();
    res.end(blob);
  });
  await new Promise<void>((resolve) => blobs.listen(0, '127.0.0.1', resolve));
  const blobUrl = `http://${HOST_FROM_GUEST}:${(blobs.address() as AddressInfo).port}/blob`;

  th = await startTestHerd(dir, { HERD_SAVE_DIR: hv.sharedDir });
  const fleet = await realFleet(th, 'graphs', [host.uri]);
  collectd = await startHostCollectd(dir, {
    hostname: fleet.hosts[0].hostname,
    libvirtUri: host.uri,
    port: th.herd.ingest!.port,
    intervalSeconds: 2,
  });

  const volume = await sharedVolume(th, {
    rackId: fleet.rackId,
    sharedDir: hv.sharedDir,
    prefix: 'graphs',
    sizeMiB: 64,
  });
  disk = volume.path;

  const script = `
ip link set eth1 up; ip addr add 10.213.0.2/24 dev eth1; ip neigh add 10.213.0.1 lladdr 02:00:00:00:00:01 dev eth1
${waitAtGate(gate.url)}
wget -q -O /dev/null ${signals.url('busy/graphs')}
while :; do :; done &
while :; do dd if=/dev/zero of=/dev/vda bs=64k count=256 conv=fsync 2>/dev/null; dd if=/dev/vda of=/dev/null bs=64k count=256 2>/dev/null; echo 3 >/proc/sys/vm/drop_caches; done &
while :; do wget -q -O /dev/null ${blobUrl}; done &
while :; do ping -c 20 -s 1200 10.213.0.1 >/dev/null 2>&1; done &
`;
  const created = await th.request('POST', '/api/v1/vms', {
    name: 'graphs-guest',
    poolId: fleet.teamId,
    vcpus: 1,
    memoryMiB: 128,
    volumes: [volume.id],
    nics: [{ network: 'user' }, { network: 'ethernet' }],
    linuxBoot: {
      kernel: hv.image.kernel,
      initrd: hv.image.initrd,
      cmdline: guestCmdline({ script, ready: signals.url('ready/graphs') }),
    },
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  vm = created.body;
  const started = await th.request('POST', `/api/v1/vms/${vm.id}/actions`, { action: 'start' });
  expect(started.status, JSON.stringify(started.body)).toBe(202);
  vm = (await th.request('GET', `/api/v1/vms/${vm.id}`)).body;
  await signals.waitFor('ready/graphs', 120_000);
  readyAt = Date.now();

  browser = await chromium.launch(CHROMIUM);
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await collectd?.stop();
  if (vm?.uuid) {
    for (const command of ['destroy', 'undefine'])
      await run('virsh', ['-q', '-c', host.uri, command, vm.uuid], { timeout: 60_000 }).catch(
        () => undefined,
      );
  }
  await release?.();
  await gate?.close();
  await th?.close();
  await signals?.close();
  await new Promise((resolve) => blobs?.close(resolve));
  if (disk) await rm(disk, { force: true });
  await rm(dir, { recursive: true, force: true });
});

function loggedIn(): Promise<Page> {
  return signIn(browser, th.url, { username: 'admin', password: th.adminPassword }, { errors: pageErrors });
}

interface Row {
  t: number;
  line: string;
  kind: string;
  value: number;
}

/** The rows the VM page's graph of `metric` draws (its vega view's data), once drawn. */
async function graphRows(page: Page, metric: string): Promise<Row[]> {
  const figure = page.locator(`figure[data-metric="${metric}"]`);
  // Attached, not visible: a flat line (memory) is a path of no height.
  await figure.locator('svg .mark-line path').first().waitFor({ state: 'attached', timeout: 30_000 });
  return figure.locator('.vega').evaluate((el) => {
    const view = (el as HTMLElement & { vegaView?: { data(name: string): unknown[] } }).vegaView;
    return (view?.data('source_0') ?? []) as Row[];
  });
}

/** Mean of a line's bucket averages whose buckets start in [from, to) (ms). */
function mean(rows: Row[], line: string, from: number, to: number): { mean: number; n: number } {
  const values = rows
    .filter((r) => r.line === line && r.kind === 'average' && r.t >= from && r.t < to)
    .map((r) => r.value);
  return { mean: values.reduce((a, b) => a + b, 0) / Math.max(1, values.length), n: values.length };
}

describe('a real guest on its VM page', () => {
  test('CPU rises when the guest gets busy; memory, disk and network lines carry its activity', async () => {
    // Idle at the gate for IDLE_SECONDS at least; busy once no other file's guest is (2 cores).
    await new Promise((r) => setTimeout(r, Math.max(0, readyAt + IDLE_SECONDS * 1000 - Date.now())));
    release = await exclusiveCpu(hv.sharedDir);
    gate.open();
    await signals.waitFor('busy/graphs', 60_000);
    const busyAt = Date.now();
    // Two whole 10 s buckets of the busy phase after the figures caught up, complete on the graph (a bucket is drawn
    // once LATENESS_SECONDS have passed after it: api/metrics/metrics.service.ts).
    await new Promise((r) => setTimeout(r, 32_000 + LATENESS_SECONDS * 1000));
    const page = await loggedIn();
    await page.goto(`${th.url}/#/vm/${vm.id}`);
    await page.waitForSelector('.vm-state [data-state="running"]');

    const cpu = await graphRows(page, 'cpu');
    // Buckets are 10 s: an idle bucket starts 5 s after the guest was up and ends before the busy phase.
    const idle = mean(cpu, 'busy', readyAt + 5000, busyAt - 10_000);
    const busy = mean(cpu, 'busy', busyAt + 6000, Date.now());
    expect(idle.n, JSON.stringify(cpu)).toBeGreaterThanOrEqual(1);
    expect(busy.n, JSON.stringify(cpu)).toBeGreaterThanOrEqual(1);
    expect(busy.mean, `idle ${idle.mean} %, busy ${busy.mean} %`).toBeGreaterThan(idle.mean + 40);

    const max = (rows: Row[], lines: string[]) =>
      Math.max(0, ...rows.filter((r) => lines.includes(r.line)).map((r) => r.value));
    const memory = await graphRows(page, 'memory');
    expect(max(memory, ['total']), JSON.stringify(memory.slice(0, 5))).toBeGreaterThan(0);
    const diskRows = await graphRows(page, 'disk');
    expect(max(diskRows, ['write']), JSON.stringify(diskRows.slice(-6))).toBeGreaterThan(0);
    expect(max(diskRows, ['read'])).toBeGreaterThan(0);
    const network = await graphRows(page, 'network');
    expect(max(network, ['tx']), JSON.stringify(network.slice(-6))).toBeGreaterThan(0);
    // The guest fetched over qemu's user network too (no host-side counters there: not in the graph).
    expect(blobCalls).toBeGreaterThan(0);
    expect(pageErrors).toEqual([]);
    await page.close();
  }, 480_000);
});
