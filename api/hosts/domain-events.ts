import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Logger } from '../../lib/log.js';

/** A libvirt domain event as `virsh event --timestamp` prints it. */
export interface DomainEvent {
  /** libvirt's timestamp of the event (ms since the epoch). */
  at: number;
  /** `lifecycle`, `reboot`, `balloon-change`, … */
  kind: string;
  /** The domain's name (virsh names the domain, not its UUID). */
  domain: string;
  /** e.g. `Suspended Paused`, `Stopped Shutdown`, `Started Booted`. */
  detail: string;
}

const LINE =
  /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)([+-]\d{4})?: event '([^']+)' for domain '(.*)'(?::\s*(.*))?$/;

/** Parses one line of `virsh event --all --loop --timestamp`; null for anything else (prompts, blank lines). */
export function parseDomainEvent(line: string): DomainEvent | null {
  const m = LINE.exec(line.trim());
  if (!m) return null;
  const [, when, zone, kind, domain, detail] = m;
  const offset = zone ? `${zone.slice(0, 3)}:${zone.slice(3)}` : 'Z';
  const at = Date.parse(`${when.replace(' ', 'T')}${offset}`);
  return { at: Number.isFinite(at) ? at : Date.now(), kind, domain, detail: detail ?? '' };
}

/** How long a dead event stream waits before it is started again, doubling up to the maximum. */
const RESTART_MIN_MS = 1_000;
const RESTART_MAX_MS = 30_000;

interface Stream {
  child?: ChildProcess;
  timer?: NodeJS.Timeout;
  delayMs: number;
}

/**
 * One long-lived `virsh -c <uri> event --all --loop --timestamp` per watched host (the libvirt binding has no
 * events), each line parsed and handed to `onEvent`. A stream that dies (libvirtd restarted, connection cut) is
 * started again after a back-off. `sync` sets the hosts watched; `stop` ends every stream.
 */
export class DomainEventStreams {
  private readonly streams = new Map<string, Stream>();
  private stopped = false;

  constructor(
    private readonly log: Logger,
    private readonly onEvent: (uri: string, event: DomainEvent) => void,
  ) {}

  /** Watches exactly these URIs: new ones are started, gone ones stopped. */
  sync(uris: Iterable<string>): void {
    if (this.stopped) return;
    const wanted = new Set(uris);
    for (const uri of [...this.streams.keys()]) if (!wanted.has(uri)) this.end(uri);
    for (const uri of wanted) {
      if (this.streams.has(uri)) continue;
      const stream: Stream = { delayMs: RESTART_MIN_MS };
      this.streams.set(uri, stream);
      this.spawn(uri, stream);
    }
  }

  /** The URIs watched now (streams running or waiting to restart). */
  watched(): string[] {
    return [...this.streams.keys()];
  }

  /** The pid of a host's virsh (tests kill it to see it come back). */
  pid(uri: string): number | undefined {
    return this.streams.get(uri)?.child?.pid;
  }

  stop(): void {
    this.stopped = true;
    for (const uri of [...this.streams.keys()]) this.end(uri);
  }

  private end(uri: string): void {
    const stream = this.streams.get(uri);
    if (!stream) return;
    this.streams.delete(uri);
    clearTimeout(stream.timer);
    stream.child?.kill('SIGTERM');
  }

  private spawn(uri: string, stream: Stream): void {
    const child = spawn('virsh', ['-c', uri, 'event', '--all', '--loop', '--timestamp'], {
      env: { ...process.env, LC_ALL: 'C' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    stream.child = child;
    const startedAt = Date.now();
    let stderr = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-2000);
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const event = parseDomainEvent(line);
      if (!event) return;
      try {
        this.onEvent(uri, event);
      } catch (err) {
        this.log.warn({ err, uri }, 'handling a domain event failed');
      }
    });
    const restart = (reason: string) => {
      if (stream.child !== child) return;
      stream.child = undefined;
      if (this.stopped || this.streams.get(uri) !== stream) return;
      // A stream that ran a while was fine: start again quickly; one that dies at once backs off.
      if (Date.now() - startedAt > RESTART_MAX_MS) stream.delayMs = RESTART_MIN_MS;
      this.log.warn(
        { uri, reason, stderr: stderr.trim() || undefined, restartInMs: stream.delayMs },
        'domain event stream ended; starting it again',
      );
      stream.timer = setTimeout(() => {
        if (this.streams.get(uri) === stream) this.spawn(uri, stream);
      }, stream.delayMs);
      stream.timer.unref();
      stream.delayMs = Math.min(RESTART_MAX_MS, stream.delayMs * 2);
    };
    child.on('error', (err) => restart(err.message));
    child.on('exit', (code, signal) => restart(`virsh exited (${signal ?? `code ${code}`})`));
  }
}
