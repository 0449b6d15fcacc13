import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { PacketEncoder } from '../ingest/protocol/encoder.js';
import type { ValueList } from '../ingest/types.js';
import type { Logger } from '../lib/log.js';
import { guestValueLists, hostValueLists, type SimulatedGuest, type SimulatedHost } from './fleet-signal.js';

export interface TrafficOptions {
  hosts: SimulatedHost[];
  /** The guests running right now (asked again every interval). */
  guests: () => Promise<SimulatedGuest[]>;
  /** herd's collectd listener. */
  port: number;
  host?: string;
  intervalSeconds?: number;
  /**
   * `real`: a collectd daemon per host carries its figures (handed to it over its unixsock plugin, from the same
   * model as the simulated traffic and the backfilled history); `simulated`: herd's encoder sends them.
   */
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
 * that host's name, or else herd's own encoder. Either way the figures are the simulated host's own, from one
 * model (app/fleet-signal.ts: its CPUs, memory, load, network and disk) that the demo's backfilled history comes
 * from too, so history and live figures meet without a seam. A real collectd is handed them each interval with
 * PUTVAL over its unixsock plugin and sends them on with its network plugin (it does not read this machine). Guests always come from the encoder — the virt plugin of a real collectd could not
 * see the libvirt test driver's domains — with the virt plugin's names and the guest's UUID as host.
 */
export async function startTraffic(o: TrafficOptions): Promise<Traffic> {
  const interval = o.intervalSeconds ?? 10;
  const target = o.host ?? '127.0.0.1';
  const socket = dgram.createSocket(target.includes(':') ? 'udp6' : 'udp4');
  const encoder = new PacketEncoder({ onPacket: (packet) => socket.send(packet, o.port, target) });
  const daemons: Array<{ child: ChildProcess; feed: CollectdFeed }> = [];
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
      else
        for (const [i, host] of o.hosts.entries())
          daemons[i].feed.put(hostValueLists(host, now, interval).map(({ vl }) => putval(vl)));
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
      for (const d of daemons) {
        d.feed.close();
        d.child.kill('SIGTERM');
      }
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
): Promise<{ child: ChildProcess; feed: CollectdFeed }> {
  const base = path.join(dir, name);
  await mkdir(base, { recursive: true });
  const conf = path.join(dir, `${name}.conf`);
  const socket = path.join(base, 'collectd.sock');
  await writeFile(
    conf,
    `Hostname "${name}"
FQDNLookup false
BaseDir "${base}"
PIDFile "${base}/collectd.pid"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
Interval ${interval}
LoadPlugin unixsock
LoadPlugin network
<Plugin unixsock>
  SocketFile "${socket}"
</Plugin>
<Plugin network>
  Server "${host}" "${port}"
</Plugin>
`,
  );
  const child = spawn('collectd', ['-f', '-C', conf], { stdio: 'ignore' });
  child.on('error', (err) => log.warn({ err: err.message, host: name }, 'demo: collectd could not start'));
  return { child, feed: new CollectdFeed(socket, log.child({ host: name })) };
}

/** A value list as a collectd unixsock PUTVAL command (counters and derives are whole numbers there). */
export function putval(vl: ValueList): string {
  const part = (name: string, instance: string) => (instance ? `${name}-${instance}` : name);
  const id = `${vl.host}/${part(vl.plugin, vl.pluginInstance)}/${part(vl.type, vl.typeInstance)}`;
  const values = vl.values.map((v, i) => (vl.dsTypes[i] === 'gauge' ? Number(v) : Math.round(Number(v))));
  return `PUTVAL "${id}" interval=${vl.interval} ${vl.time.toFixed(3)}:${values.join(':')}`;
}

/**
 * The connection to one collectd's unixsock: commands are written as they come, its answers (one line each)
 * read and dropped. Until the daemon has made its socket, or after it went away, a round's commands are dropped
 * (the next round has newer figures) and the connection is tried again.
 */
class CollectdFeed {
  private socket?: net.Socket;
  private closed = false;

  constructor(
    private readonly path: string,
    private readonly log: Logger,
  ) {}

  put(commands: string[]): void {
    if (this.closed) return;
    if (!this.socket) {
      const socket = net.createConnection(this.path);
      socket.on('data', () => undefined);
      socket.on('error', (err) => {
        this.log.debug({ err: err.message }, 'demo: collectd socket not ready');
        if (this.socket === socket) this.socket = undefined;
        socket.destroy();
      });
      socket.on('close', () => {
        if (this.socket === socket) this.socket = undefined;
      });
      this.socket = socket;
      // Not connected yet: this round goes once it is.
      socket.once('connect', () => socket.write(`${commands.join('\n')}\n`));
      return;
    }
    if (!this.socket.connecting) this.socket.write(`${commands.join('\n')}\n`);
  }

  close(): void {
    this.closed = true;
    this.socket?.destroy();
  }
}
