/**
 * What the benchmark reads about processes and sockets from /proc: CPU ticks, time waited for a core, memory,
 * and per-socket UDP drops and receive buffers (so loss can be placed: in the kernel's socket buffer or in the
 * receiver).
 */
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';

/** USER_HZ: /proc/<pid>/stat counts CPU time in 1/100 s on Linux. */
export const CLOCK_TICKS = 100;

/** The fields of /proc/<pid>/stat after the command name (which may hold spaces): field 3 (state) first. */
async function statFields(pid: number | string): Promise<string[]> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** User + system CPU of a process and all its threads, in clock ticks. */
export async function cpuTicks(pid: number): Promise<number> {
  const fields = await statFields(pid);
  return Number(fields[11]) + Number(fields[12]);
}

/**
 * How long a process's main thread has run and how long it waited, runnable, for a core (ms, from
 * /proc/<pid>/schedstat): the wait shows how contended the machine's cores were.
 */
export async function runAndWaitMs(pid: number): Promise<{ run: number; wait: number }> {
  const [run, wait] = (await readFile(`/proc/${pid}/schedstat`, 'utf8')).trim().split(' ').map(Number);
  return { run: run / 1e6, wait: wait / 1e6 };
}

/**
 * User + system CPU of a process and its children, in clock ticks: those running now and those that exited
 * (which the kernel adds to their parent once it reaped them), so a child ending between two reads (a database
 * connection closed, say) still counts.
 */
export async function treeCpuTicks(pid: number): Promise<number> {
  const ticks = (f: string[]) => Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  let total = ticks(await statFields(pid));
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || entry === String(pid)) continue;
    // A process may exit between listing and reading: it is then in its parent's figure.
    const child = await statFields(entry).catch(() => null);
    if (child && Number(child[1]) === pid) total += ticks(child);
  }
  return total;
}

/** CPU ticks the whole machine spent busy (all cores; idle and I/O wait left out). */
export async function machineBusyTicks(): Promise<number> {
  const cpu = (await readFile('/proc/stat', 'utf8')).split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = cpu;
  return user + nice + system + irq + softirq + (steal ?? 0);
}

/** Resident memory, in MiB. */
export async function memory(pid: number): Promise<{ rssMiB: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return { rssMiB: Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024) };
}

/** Datagrams the kernel dropped on the IPv4 socket bound to 127.0.0.1:port (receive buffer full). */
export async function udpDrops(port: number): Promise<number> {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const table = await readFile('/proc/net/udp', 'utf8');
  for (const line of table.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols[1] === local) return Number(cols[cols.length - 1]);
  }
  return Number.NaN;
}

/** Whether something listens on UDP 127.0.0.1:port. */
export async function udpBound(port: number): Promise<boolean> {
  return !Number.isNaN(await udpDrops(port).catch(() => Number.NaN));
}

/** The receive buffer the kernel gave the socket on UDP port `port` (`ss`'s skmem rb), or null. */
export async function udpReceiveBuffer(port: number): Promise<number | null> {
  try {
    const { stdout } = await promisify(execFile)('ss', ['-uamnH', 'sport', '=', `:${port}`]);
    const rb = /\brb(\d+)/.exec(stdout)?.[1];
    return rb === undefined ? null : Number(rb);
  } catch {
    return null;
  }
}
