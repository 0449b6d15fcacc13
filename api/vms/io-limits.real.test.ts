import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  exclusiveCpu,
  type GuestSignals,
  guestCmdline,
  HOST_FROM_GUEST,
  sharedHypervisor,
  startGuestSignals,
} from '../../lib/testing/hypervisor.js';
import {
  realFleet,
  sharedVolume,
  startTestHerd,
  type TestHerd,
  waitForTask,
} from '../../lib/testing/real-herd.js';

/**
 * Network and disk limits on a real guest: herd (every role) on the suite's real libvirtds. The guest reads its
 * disk with `dd` and uploads a file to the test over its tap NIC (network `ethernet`: qemu's user network has no
 * host device libvirt can shape), in rounds the test starts. Each round's disk read rate is ~ the effective limit
 * (within 30 %): first the limit the VM was created with (in the definition its start wrote), then a higher one
 * set live, through its VM pool's limit, lower than the VM's own, which wins. The limits are in the persistent
 * definition and follow a live migration, and lifting them lifts them on the host.
 *
 * NIC limits are tc rules libvirt puts on the tap (an ingress policer for what the guest sends, htb and sfq for
 * what it receives). Where the kernel has those (act_police, sch_sfq), each round's upload rate is ~ the
 * outbound limit too; where it has not (this kind of machine's kernel: "Failed to load TC action module"),
 * setting one on the running guest is refused with libvirt's tc error and the VM keeps none.
 *
 * The tap is this machine's only: the test gives its host side 10.214.0.1/30 (the guest takes .2) and listens
 * there; nothing leaves the machine. Rates are timed on the host, over several seconds each (TCG is slow and the
 * machine shared: short transfers would be noise).
 */
const run = promisify(execFile);
const hv = sharedHypervisor();
const virsh = async (uri: string, ...args: string[]) =>
  (await run('virsh', ['-q', '-c', uri, ...args], { timeout: 60_000 })).stdout;

const TAP_HOST = '10.214.0.1';
const TAP_GUEST = '10.214.0.2';
const KiB = 1024;
const MiB = 1024 * KiB;
const BLOCK = 64 * KiB;

/** Each round: the effective limits, and how much the guest moves (about 8 s at the limit). */
const ROUNDS = [
  { diskBytesPerSec: 1 * MiB, diskBlocks: 128, netKiBps: 256, netBlocks: 40 },
  { diskBytesPerSec: 2 * MiB, diskBlocks: 256, netKiBps: 512, netBlocks: 80 },
];

let dir: string;
let th: TestHerd;
let signals: GuestSignals;
let rounds: http.Server;
let uploads: http.Server | undefined;
let vm: { id: number; uuid: string; poolId: number; nics: Array<{ mac: string; network: string }> };
let hostIds: number[];
let release: (() => Promise<void>) | undefined;
let disk: string | undefined;
/** What round the guest may start (the round server answers its parameters from then on). */
let openRound = 0;
let skipBlocks = 0;
/** Whether the hosts' kernel lets libvirt shape the tap (found by setting a NIC limit on the running guest). */
let shaping = false;
const received = new Map<string, { bytes: number; times: Array<[number, number]> }>();

/** Rounds the guest runs: each waits until the test opens it, then reads the disk and uploads over the tap. */
function guestScript(roundUrl: string): string {
  return `
ip link set eth1 up; ip addr add ${TAP_GUEST}/30 dev eth1
for r in ${ROUNDS.map((_, i) => i + 1).join(' ')}; do
  until A=$(wget -q -O - ${roundUrl}/$r); do sleep 1; done
  set -- $A
  sync; echo 3 >/proc/sys/vm/drop_caches
  wget -q -O /dev/null ${signals.url('disk-start')}-$r
  dd if=/dev/vda of=/dev/null bs=64k count=$1 skip=$2 2>/dev/null
  wget -q -O /dev/null ${signals.url('disk-end')}-$r
  if [ "$3" -gt 0 ]; then
    dd if=/dev/zero of=/tmp/blob bs=64k count=$3 2>/dev/null
    wget -q -O /dev/null --post-file=/tmp/blob http://${TAP_HOST}:$4/net-$r
    rm -f /tmp/blob
  fi
  wget -q -O /dev/null ${signals.url('net-end')}-$r
done
`;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'herd-iolimits-'));
  signals = await startGuestSignals();
  rounds = http.createServer((req, res) => {
    req.resume();
    const r = Number(/^\/round\/(\d+)$/.exec(req.url ?? '')?.[1]);
    const round = ROUNDS[r - 1];
    if (!round || r > openRound || !uploads) {
      res.statusCode = 404;
      res.end();
      return;
    }
    const port = (uploads.address() as AddressInfo).port;
    res.end(`${round.diskBlocks} ${skipBlocks} ${shaping ? round.netBlocks : 0} ${port}\n`);
  });
  await new Promise<void>((resolve) => rounds.listen(0, '127.0.0.1', resolve));
  th = await startTestHerd(dir, { HERD_SAVE_DIR: hv.sharedDir });
  const fleet = await realFleet(
    th,
    'iolimits',
    hv.hosts.map((h) => h.uri),
  );
  hostIds = fleet.hosts.map((h) => h.id);

  const volume = await sharedVolume(th, {
    rackId: fleet.rackId,
    sharedDir: hv.sharedDir,
    prefix: 'iolimits',
    sizeMiB: 64,
  });
  disk = volume.path;
  const created = await th.request('POST', '/api/v1/vms', {
    name: 'iolimits-guest',
    poolId: fleet.teamId,
    vcpus: 1,
    memoryMiB: 128,
    volumes: [volume.id],
    nics: [{ network: 'user' }, { network: 'ethernet' }],
    diskReadBytesPerSec: ROUNDS[0].diskBytesPerSec,
    linuxBoot: {
      kernel: hv.image.kernel,
      initrd: hv.image.initrd,
      cmdline: guestCmdline({
        script: guestScript(`http://${HOST_FROM_GUEST}:${(rounds.address() as AddressInfo).port}/round`),
        ready: signals.url('ready/iolimits'),
      }),
    },
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  vm = (await th.request('GET', `/api/v1/vms/${created.body.id}`)).body;
  const started = await th.request('POST', `/api/v1/vms/${vm.id}/actions`, {
    action: 'start',
    hostId: hostIds[0],
  });
  expect(started.status, JSON.stringify(started.body)).toBe(202);
  await waitForTask(th, started.body.taskId);
  await signals.waitFor('ready/iolimits', 180_000);

  // The host side of the guest's tap: an address of this machine's only, where the uploads go.
  const tapMac = vm.nics.find((n) => n.network === 'ethernet')!.mac;
  const iflist = await virsh(hv.hosts[0].uri, 'domiflist', vm.uuid);
  const tap = iflist
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .find((cols) => cols.includes(tapMac))?.[0];
  expect(tap, iflist).toMatch(/^vnet\d+$/);
  await run('ip', ['addr', 'add', `${TAP_HOST}/30`, 'dev', tap!]);
  uploads = http.createServer((req, res) => {
    const entry = { bytes: 0, times: [] as Array<[number, number]> };
    received.set((req.url ?? '/').slice(1), entry);
    req.on('data', (chunk: Buffer) => {
      entry.bytes += chunk.length;
      entry.times.push([performance.now(), entry.bytes]);
    });
    req.on('end', () => res.end('ok\n'));
  });
  await new Promise<void>((resolve) => uploads!.listen(0, TAP_HOST, resolve));
}, 300_000);

afterAll(async () => {
  for (const h of hv.hosts) {
    if (!vm) break;
    await virsh(h.uri, 'destroy', vm.uuid).catch(() => undefined);
    await virsh(h.uri, 'undefine', vm.uuid).catch(() => undefined);
  }
  await release?.();
  await new Promise((r) => uploads?.close(r) ?? r(undefined));
  await new Promise((r) => rounds?.close(r));
  await th?.close();
  await signals?.close();
  if (disk) await rm(disk, { force: true });
  await rm(dir, { recursive: true, force: true });
});

/**
 * Lets the guest run round `r` and answers its disk read rate (bytes/s, timed between its signals) and its upload
 * rate (KiB/s, over the last three quarters of the bytes: the first ones pass in the NIC limit's burst).
 */
async function runRound(r: number): Promise<{ disk: number; net: number | null }> {
  openRound = r;
  await signals.waitFor(`disk-start-${r}`, 120_000);
  const t0 = performance.now();
  await signals.waitFor(`disk-end-${r}`, 120_000);
  const disk = (ROUNDS[r - 1].diskBlocks * BLOCK) / ((performance.now() - t0) / 1000);
  skipBlocks += ROUNDS[r - 1].diskBlocks;
  await signals.waitFor(`net-end-${r}`, 120_000);
  const rate = `disk ${(disk / MiB).toFixed(2)} MiB/s at a limit of ${ROUNDS[r - 1].diskBytesPerSec / MiB} MiB/s`;
  if (!shaping) {
    console.info(`io-limits: round ${r}: ${rate}`);
    return { disk, net: null };
  }
  const upload = received.get(`net-${r}`);
  expect(upload?.bytes, 'upload received whole').toBeGreaterThanOrEqual(ROUNDS[r - 1].netBlocks * BLOCK);
  const { times, bytes } = upload!;
  const [tq, bq] = times.find(([, b]) => b >= bytes / 4)!;
  const [tEnd] = times[times.length - 1];
  const net = (bytes - bq) / KiB / ((tEnd - tq) / 1000);
  console.info(`io-limits: round ${r}: ${rate}, upload ${net.toFixed(0)} KiB/s at ${ROUNDS[r - 1].netKiBps}`);
  return { disk, net };
}

const within30 = (measured: number | null, limit: number) => {
  expect(measured).not.toBeNull();
  expect(measured).toBeGreaterThan(limit * 0.7);
  expect(measured).toBeLessThan(limit * 1.3);
};

async function blkdeviotune(uri: string, ...flags: string[]) {
  const out = await virsh(uri, 'blkdeviotune', vm.uuid, 'vda', ...flags);
  return Number(/read_bytes_sec\s*:\s*(\d+)/.exec(out)?.[1]);
}
async function domiftune(uri: string, ...flags: string[]) {
  const mac = vm.nics.find((n) => n.network === 'ethernet')!.mac;
  const out = await virsh(uri, 'domiftune', vm.uuid, mac, ...flags);
  return Number(/outbound\.average\s*:\s*(\d+)/.exec(out)?.[1]);
}

/**
 * Sets the VM's own outbound NIC limit on the running guest: applied (the kernel shapes) or refused with
 * libvirt's tc error, the VM then keeping none. Answers whether it was applied.
 */
async function setNetLimit(kiBps: number): Promise<boolean> {
  const res = await th.request('PATCH', `/api/v1/vms/${vm.id}`, { netOutboundKiBps: kiBps });
  if (res.status === 200) {
    expect(res.body).toMatchObject({ netOutboundKiBps: kiBps, effectiveNetOutboundKiBps: kiBps });
    expect(await domiftune(hv.hosts[0].uri, '--live')).toBe(kiBps);
    expect(await domiftune(hv.hosts[0].uri, '--config')).toBe(kiBps);
    return true;
  }
  expect(res.status, JSON.stringify(res.body)).toBe(409);
  expect(res.body.message).toMatch(/^netOutboundKiBps: could not apply .*\(tc /);
  console.info(`io-limits: this kernel cannot shape the guest's tap: ${res.body.message}`);
  expect((await th.request('GET', `/api/v1/vms/${vm.id}`)).body).toMatchObject({ netOutboundKiBps: null });
  expect(await domiftune(hv.hosts[0].uri, '--config')).toBe(0);
  return false;
}

describe('a real guest reading its disk and uploading over its NIC', () => {
  test('~ the limits it was created with, ~ the higher ones set live (the pool’s lower one wins), kept across migration', async () => {
    // The rates are what the limits allow, not what a busy machine leaves: one busy guest at a time.
    release = await exclusiveCpu(hv.sharedDir);
    shaping = await setNetLimit(ROUNDS[0].netKiBps);
    const first = await runRound(1);
    within30(first.disk, ROUNDS[0].diskBytesPerSec);
    if (shaping) within30(first.net, ROUNDS[0].netKiBps);

    // Live: the VM pool's disk limit, below the VM's own, wins; the VM's own outbound limit.
    const own = await th.request('PATCH', `/api/v1/vms/${vm.id}`, {
      diskReadBytesPerSec: 4 * ROUNDS[1].diskBytesPerSec,
    });
    expect(own.status, JSON.stringify(own.body)).toBe(200);
    const pool = await th.request('PATCH', `/api/v1/pools/${vm.poolId}`, {
      diskReadBytesPerSec: ROUNDS[1].diskBytesPerSec,
    });
    expect(pool.status, JSON.stringify(pool.body)).toBe(200);
    expect((await th.request('GET', `/api/v1/vms/${vm.id}`)).body).toMatchObject({
      state: 'running',
      diskReadBytesPerSec: 4 * ROUNDS[1].diskBytesPerSec,
      effectiveDiskReadBytesPerSec: ROUNDS[1].diskBytesPerSec,
    });
    expect(await blkdeviotune(hv.hosts[0].uri, '--live')).toBe(ROUNDS[1].diskBytesPerSec);
    expect(await blkdeviotune(hv.hosts[0].uri, '--config')).toBe(ROUNDS[1].diskBytesPerSec);
    if (shaping) expect(await setNetLimit(ROUNDS[1].netKiBps)).toBe(true);
    const second = await runRound(2);
    await release();
    release = undefined;
    within30(second.disk, ROUNDS[1].diskBytesPerSec);
    if (shaping) within30(second.net, ROUNDS[1].netKiBps);
    expect(second.disk).toBeGreaterThan(first.disk * 1.4);

    // Live migration carries them, live and in the destination's persistent definition.
    const migrated = await th.request('POST', `/api/v1/vms/${vm.id}/actions`, {
      action: 'migrate',
      hostId: hostIds[1],
    });
    expect(migrated.status, JSON.stringify(migrated.body)).toBe(202);
    await waitForTask(th, migrated.body.taskId);
    expect(await blkdeviotune(hv.hosts[1].uri, '--live')).toBe(ROUNDS[1].diskBytesPerSec);
    const persistent = await virsh(hv.hosts[1].uri, 'dumpxml', '--inactive', vm.uuid);
    expect(persistent).toContain(`<read_bytes_sec>${ROUNDS[1].diskBytesPerSec}</read_bytes_sec>`);
    if (shaping) {
      expect(await domiftune(hv.hosts[1].uri, '--live')).toBe(ROUNDS[1].netKiBps);
      expect(persistent).toMatch(new RegExp(`<outbound average=.${ROUNDS[1].netKiBps}.`));
    }

    // Lifted everywhere: nothing on the host any more.
    await th.request('PATCH', `/api/v1/pools/${vm.poolId}`, { diskReadBytesPerSec: null });
    const lifted = await th.request('PATCH', `/api/v1/vms/${vm.id}`, {
      diskReadBytesPerSec: null,
      netOutboundKiBps: null,
    });
    expect(lifted.status, JSON.stringify(lifted.body)).toBe(200);
    expect(lifted.body).toMatchObject({
      effectiveDiskReadBytesPerSec: null,
      effectiveNetOutboundKiBps: null,
    });
    expect(await blkdeviotune(hv.hosts[1].uri, '--live')).toBe(0);
    if (shaping) expect(await domiftune(hv.hosts[1].uri, '--live')).toBe(0);
  }, 600_000);
});
