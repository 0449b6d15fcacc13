import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { freePort } from '../embedded-postgres.js';

export interface InfluxServer {
  url: string;
  port: number;
  dir: string;
  start(): Promise<void>;
  /** The running influxd's process id. */
  pid(): number | undefined;
  stop(): Promise<void>;
}

/**
 * A real influxd (Debian's `influxdb` package) on loopback with its data under `dir`. It can be stopped
 * and started again on the same port and data, to test herd riding out an outage.
 */
export async function createInflux(
  dir: string,
  options: { extraConfig?: string; port?: number } = {},
): Promise<InfluxServer> {
  const port = options.port ?? (await freePort());
  const rpcPort = await freePort();
  await mkdir(dir, { recursive: true });
  const configFile = path.join(dir, 'influxdb.conf');
  await writeFile(
    configFile,
    `reporting-disabled = true
bind-address = "127.0.0.1:${rpcPort}"
[meta]
  dir = "${path.join(dir, 'meta')}"
[data]
  dir = "${path.join(dir, 'data')}"
  wal-dir = "${path.join(dir, 'wal')}"
  query-log-enabled = false
  index-version = "inmem"
[coordinator]
  log-queries-after = "0s"
[http]
  enabled = true
  bind-address = "127.0.0.1:${port}"
  log-enabled = false
  max-body-size = 0
[logging]
  level = "warn"
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = true
  run-interval = "1s"
${options.extraConfig ?? ''}
`,
  );
  let child: ChildProcess | undefined;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    port,
    dir,
    async start() {
      if (child) return;
      const proc = spawn('influxd', ['-config', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
      child = proc;
      let stderr = '';
      proc.stderr?.on('data', (d) => {
        stderr = (stderr + d).slice(-4000);
      });
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        if (proc.exitCode !== null) throw new Error(`influxd exited with ${proc.exitCode}: ${stderr}`);
        try {
          const res = await fetch(`${url}/ping`);
          if (res.status === 204) return;
        } catch {}
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`influxd did not answer on ${url} within 30 s: ${stderr}`);
    },
    pid: () => child?.pid,
    async stop() {
      const proc = child;
      child = undefined;
      if (!proc || proc.exitCode !== null) return;
      await new Promise<void>((resolve) => {
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
        setTimeout(() => proc.kill('SIGKILL'), 10_000).unref();
      });
    },
  };
}
