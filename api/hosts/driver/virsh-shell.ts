import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import type { Logger } from '../../../lib/log.js';

/** A virsh command that printed `error: …`; the message is virsh's own. */
export class VirshError extends Error {
  constructor(
    readonly command: string,
    message: string,
  ) {
    super(message);
    this.name = 'VirshError';
  }
}

interface Pending {
  command: string;
  sentinel: string;
  timeoutMs: number;
  resolve: (output: string) => void;
  reject: (err: Error) => void;
}

const PROMPT = 'virsh # ';
const DEFAULT_TIMEOUT_MS = 60_000;

/**
 * One long-lived interactive `virsh -c URI` per host, fed commands on stdin, one at a time.
 *
 * Why a persistent shell and not one `virsh` per command: libvirt's test driver keeps its state per
 * connection, so a fresh process would see a fresh fake host. One shell is one connection, for the host's
 * whole life in herd. Each command is followed by an `echo` of a sentinel; the sentinel is written with
 * split quotes so the echoed command line (virsh's readline echoes input) never contains it, only the
 * output does. stderr is merged into stdout (same pipe) so `error:` lines stay in order.
 */
export class VirshShell {
  private child: ChildProcessWithoutNullStreams | undefined;
  private buffer = '';
  private readonly queue: Pending[] = [];
  private current: Pending | undefined;
  private timer: NodeJS.Timeout | undefined;
  private seq = 0;
  private closed = false;

  constructor(
    readonly uri: string,
    private readonly log: Logger,
  ) {}

  /** Runs one virsh command (arguments quoted for virsh) and answers its output without prompts. */
  run(args: string[], options: { timeoutMs?: number } = {}): Promise<string> {
    if (this.closed) return Promise.reject(new Error(`virsh shell for ${this.uri} is closed`));
    const command = args.map(quote).join(' ');
    return new Promise((resolve, reject) => {
      this.queue.push({
        command,
        sentinel: `@@HERD-${++this.seq}@@`,
        timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
        resolve,
        reject,
      });
      this.next();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const child = this.child;
    this.child = undefined;
    this.failAll(new Error(`virsh shell for ${this.uri} closed`));
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.stdin.end('quit\n');
    const kill = setTimeout(() => child.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(kill);
  }

  private ensureChild(): ChildProcessWithoutNullStreams {
    if (this.child) return this.child;
    // `exec … 2>&1` puts stderr on the same pipe as stdout, keeping error lines in command order.
    const child = spawn('sh', ['-c', 'exec virsh -q -c "$HERD_VIRSH_URI" 2>&1'], {
      env: { ...process.env, HERD_VIRSH_URI: this.uri, LC_ALL: 'C', TERM: 'dumb' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => this.onData(chunk));
    child.stderr.resume();
    child.stdin.on('error', () => {});
    child.on('error', (err) => this.onExit(child, err.message));
    child.on('exit', (code, signal) => this.onExit(child, `virsh exited (${signal ?? `code ${code}`})`));
    this.child = child;
    this.buffer = '';
    return child;
  }

  private next(): void {
    if (this.current || this.queue.length === 0) return;
    const job = this.queue.shift()!;
    this.current = job;
    let child: ChildProcessWithoutNullStreams;
    try {
      child = this.ensureChild();
    } catch (err) {
      this.finish(undefined, err as Error);
      return;
    }
    this.timer = setTimeout(() => {
      // A hung command leaves the shell in an unknown place: kill it; the next command starts a new one.
      this.log.warn({ uri: this.uri, command: job.command }, 'virsh command timed out');
      const hung = this.child;
      this.child = undefined;
      hung?.kill('SIGKILL');
      this.finish(
        undefined,
        new Error(`virsh ${job.command.split(' ')[0]} timed out after ${job.timeoutMs} ms`),
      );
    }, job.timeoutMs);
    const [head, tail] = [job.sentinel.slice(0, 4), job.sentinel.slice(4)];
    child.stdin.write(`${job.command}\necho "${head}""${tail}"\n`);
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    const job = this.current;
    if (!job) return;
    const at = this.buffer.indexOf(job.sentinel);
    if (at < 0) return;
    const raw = this.buffer.slice(0, at);
    this.buffer = this.buffer.slice(at + job.sentinel.length);
    const lines = raw
      .split('\n')
      .map((line) => line.replace(/\r$/, ''))
      .filter((line) => !line.startsWith(PROMPT));
    const errors = lines.filter((line) => line.startsWith('error: ')).map((line) => line.slice(7));
    if (errors.length > 0) {
      // virsh prints a generic line first ("failed to get pool 'x'") then libvirt's reason: keep both.
      this.finish(undefined, new VirshError(job.command, errors.join(': ')));
    } else {
      this.finish(lines.join('\n').replace(/^\n+|\s+$/g, ''));
    }
  }

  private finish(output: string | undefined, error?: Error): void {
    const job = this.current;
    if (!job) return;
    clearTimeout(this.timer);
    this.current = undefined;
    if (error) job.reject(error);
    else job.resolve(output ?? '');
    this.next();
  }

  private onExit(child: ChildProcessWithoutNullStreams, reason: string): void {
    // A child killed after a timeout may report its exit after its successor started.
    if (this.child !== child) return;
    this.child = undefined;
    const job = this.current;
    if (!job) return;
    // virsh exits at once when it cannot connect; its error lines say why.
    const errors = this.buffer
      .split('\n')
      .filter((line) => line.startsWith('error: '))
      .map((line) => line.slice(7));
    this.buffer = '';
    this.finish(undefined, new VirshError(job.command, errors.length > 0 ? errors.join(': ') : reason));
  }

  private failAll(err: Error): void {
    clearTimeout(this.timer);
    const jobs = [...(this.current ? [this.current] : []), ...this.queue.splice(0)];
    this.current = undefined;
    for (const job of jobs) job.reject(err);
  }
}

/** Quotes one argument for virsh's own shell-like parser. */
function quote(arg: string): string {
  if (/^[A-Za-z0-9_./:=@,+-]+$/.test(arg)) return arg;
  return `'${arg.replaceAll("'", "'\\''")}'`;
}
