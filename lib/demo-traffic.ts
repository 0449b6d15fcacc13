import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PacketEncoder } from '../ingest/protocol/encoder.js';
import { guestValueLists, hostValueLists, type SimulatedGuest, type SimulatedHost } from './fleet-signal.js';
import type { Logger } from './log.js';

export interface TrafficOptions {
  hosts: SimulatedHost[];
  /** The guests running right now (asked again every interval). */
  guests: () => Promise<SimulatedGuest[]>;
  /** herd's collectd listener. */
  port: number;
  host?: string;
  intervalSeconds?: number;
  /** `real`: a collectd daemon per host where collectd is installed (host figures are then this machine's). */
  collectd: 'real' | 'simulated';
  /** Where real collectd keeps its configuration files. */
  dir: string;
  log: Logger;
}

export interface Traffic {
  /** What sends the hosts' figures: collectd itself, or herd's encoder. */
  kind: 'real' | 'simulated';
  stop(): Promise<void>;
}

/** Whether Debian's collectd (collectd-core) is installed. */
export function collectdInstalled(): boolean {
  return spawnSync('collectd', ['-h'], { stdio: 'ignore' }).error === undefined;
}

/**
 * collectd traffic for simulated hosts, over UDP to herd's listener: per host a real collectd daemon under
 * that host's name (cpu, memory, load, interface, disk), or else herd's own encoder sending a synthetic signal
 * (lib/fleet-signal.ts). Guests always come from the encoder — the virt plugin of a real collectd could not
 * see the libvirt test driver's domains — with the virt plugin's names and the guest's UUID as host.
 */
export async function startTraffic(o: TrafficOptions): Promise<Traffic> {
  const interval = o.intervalSeconds ?? 10;
  const target = o.host ?? '127.0.0.1';
  const socket = dgram.createSocket(target.includes(':') ? 'udp6' : 'udp4');
  const encoder = new PacketEncoder({ onPacket: (packet) => socket.send(packet, o.port, target) });
  const daemons: ChildProcess[] = [];
  const kind = o.collectd;
  if (kind === 'real') {
    await mkdir(o.dir, { recursive: true });
    for (const host of o.hosts)
      daemons.push(await startCollectd(host.name, target, o.port, interval, o.dir, o.log));
  }

  let sending = false;
  const tick = async () => {
    if (sending) return;
    sending = true;
    try {
      const now = Date.now() / 1000;
      if (kind === 'simulated')
        for (const host of o.hosts)
          for (const { vl } of hostValueLists(host, now, interval)) encoder.addValues(vl);
      for (const guest of await o.guests())
        for (const { vl } of guestValueLists(guest, now, interval)) encoder.addValues(vl);
      encoder.flush();
    } catch (err) {
      o.log.warn({ err: (err as Error).message }, 'demo traffic: a round failed');
    } finally {
      sending = false;
    }
  };
  await tick();
  const timer = setInterval(() => void tick(), interval * 1000);
  timer.unref();
  return {
    kind,
    async stop() {
      clearInterval(timer);
      for (const d of daemons) d.kill('SIGTERM');
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}

async function startCollectd(
  name: string,
  host: string,
  port: number,
  interval: number,
  dir: string,
  log: Logger,
): Promise<ChildProcess> {
  const base = path.join(dir, name);
  await mkdir(base, { recursive: true });
  const conf = path.join(dir, `${name}.conf`);
  await writeFile(
    conf,
    `Hostname "${name}"
FQDNLookup false
BaseDir "${base}"
PIDFile "${base}/collectd.pid"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
Interval ${interval}
LoadPlugin cpu
LoadPlugin memory
LoadPlugin load
LoadPlugin interface
LoadPlugin disk
LoadPlugin network
<Plugin network>
  Server "${host}" "${port}"
</Plugin>
`,
  );
  const child = spawn('collectd', ['-f', '-C', conf], { stdio: 'ignore' });
  child.on('error', (err) => log.warn({ err: err.message, host: name }, 'demo: collectd could not start'));
  return child;
}
