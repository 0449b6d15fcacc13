import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';

/** The built command line (`npm run build` first). */
export const CLI = path.resolve('dist/app/cli.js');

export type HerdRole = 'ingest' | 'api' | 'worker';

/** A `herd serve --only <role>` child process and what it said. */
export interface HerdProcess {
  role: HerdRole;
  child: ChildProcess;
  /** The bound HTTP address (api). */
  http?: string;
  /** The bound collectd port (ingest). */
  udpPort?: number;
  /** Its stdout and stderr lines. */
  log: string[];
  /** Resolves once the process has exited (at once when it already has). */
  exited(): Promise<void>;
}

/**
 * Starts `herd serve --only <role>` with `env` over the current environment; resolves once it says it is ready
 * (api: HTTP listening, ingest: collectd bound, worker: task worker started), rejects if it exits or is not
 * ready within 60 s.
 */
export async function startHerdProcess(role: HerdRole, env: Record<string, string>): Promise<HerdProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', '--only', role], {
    env: { ...process.env, HERD_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const h: HerdProcess = { role, child, log: [], exited: () => gone };
  createInterface({ input: child.stderr! }).on('line', (line) => h.log.push(line));
  const lines = createInterface({ input: child.stdout! });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${role} did not start: ${h.log.join('\n')}`));
    }, 60_000);
    child.once('exit', (code) => reject(new Error(`${role} exited with ${code}: ${h.log.join('\n')}`)));
    lines.on('line', (line) => {
      h.log.push(line);
      let entry: { msg?: string; address?: string; port?: number };
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      if (entry.msg === 'HTTP API listening') h.http = entry.address;
      if (entry.msg === 'collectd listener bound' && entry.port) h.udpPort ??= entry.port;
      const ready =
        role === 'api' ? h.http : role === 'ingest' ? h.udpPort : entry.msg === 'task worker started';
      if (ready) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return h;
}

/** Sends `signal` and waits for the process to exit. */
export async function stopHerdProcess(h: HerdProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (h.child.exitCode === null && h.child.signalCode === null) h.child.kill(signal);
  await h.exited();
}

/** A JSON call to a herd API at `base` with a bearer token: the status and the parsed body. */
export async function apiCall(
  base: string,
  token: string,
  method: string,
  url: string,
  body?: unknown,
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}${url}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}
