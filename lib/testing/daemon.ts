import { type ChildProcess, spawn } from 'node:child_process';

export interface Daemon {
  child: ChildProcess;
  /** The last 4000 characters it wrote to stderr, for error messages. */
  stderr(): string;
  /** SIGTERM, then SIGKILL when it has not exited within 5 s; safe to call twice. */
  stop(): Promise<void>;
}

/** A test's own daemon, run in the foreground (tied to this process), stdout ignored. */
export function startDaemon(command: string, args: string[], env?: NodeJS.ProcessEnv): Daemon {
  const child = spawn(command, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  return {
    child,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
