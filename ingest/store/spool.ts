import {
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rm,
  stat,
  truncate,
  unlink,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from 'node:zlib';

/** A batch of line protocol on its way to InfluxDB: in memory (`body`) or in the spool (`spooled`). */
export interface Batch {
  /** Delivery order; see InfluxStore.flush. */
  seq: number;
  count: number;
  /** Gzipped line protocol while the batch is in memory. */
  body?: Promise<Buffer>;
  /** Where the gzipped body sits on disk, once written. */
  spooled?: { segment: number; offset: number; length: number };
  /** Resolves true once on disk, false if the spool dropped it instead. */
  written?: Promise<boolean>;
  done?: boolean;
}

export interface SpoolHooks {
  /** The spool gave up on a batch (full, unwritable, unreadable); `reason` is for the log line. */
  dropped(batch: Batch, reason: string): void;
  /** A batch was written (or given up): there is room for more of `maxUnwritten`. */
  drained?(): void;
}

// Record: magic, body length, point count, CRC-32 of the body; then the body (gzipped line protocol,
// exactly what is POSTed). A torn record at the end of a segment (crash mid-write) is cut off on open.
const MAGIC = 0x48535031; // "HSP1"
const HEADER = 16;
const SEGMENT_RE = /^(\d{16})\.seg$/;
// The batch that was in flight when herd stopped is older than everything in the segments (which only
// ever receive batches spilled after it was taken): it is kept in a file of its own, delivered first.
const HEAD_SEGMENT = 0;

/**
 * An append-only disk queue of batches under `dir`: segment files written in order, a cursor file
 * recording how far delivery got, and consumed segments deleted. Entries come out oldest first,
 * including after a restart. At most `maxBytes` on disk and `maxUnwritten` points waiting to be
 * written; beyond that batches are dropped (reported through `hooks`). One process per directory
 * (a LOCK file with the owner's pid).
 */
export class Spool {
  private entries: Batch[] = [];
  private active?: { segment: number; handle: FileHandle; size: number };
  private nextSegment = 1;
  private readonly sizes = new Map<number, number>();
  /** Size of the segment files (the bound applies to this). */
  private diskBytes = 0;
  /** Bytes of the records still waiting for delivery. */
  private waitingBytes = 0;
  private queuedPoints = 0;
  private unwrittenPoints = 0;
  private cursor = { segment: 0, offset: 0 };
  private chain: Promise<unknown> = Promise.resolve();
  private isOpen = false;
  private readonly segmentBytes: number;

  constructor(
    private readonly dir: string,
    private readonly maxBytes: number,
    private readonly maxUnwritten: number,
    private readonly hooks: SpoolHooks,
  ) {
    this.segmentBytes = Math.min(64 * 1024 * 1024, Math.max(4096, Math.floor(maxBytes / 8)));
  }

  get head(): Batch | undefined {
    return this.entries[0];
  }

  get points(): number {
    return this.queuedPoints;
  }

  /** Bytes of records waiting on disk. */
  get bytes(): number {
    return this.waitingBytes;
  }

  get opened(): boolean {
    return this.isOpen;
  }

  /** Whether `append` would take `count` more points without dropping them (see `maxUnwritten`). */
  canTake(count: number): boolean {
    return this.unwrittenPoints + count <= this.maxUnwritten;
  }

  /** Takes the lock and loads what a previous run left, oldest first; `seq` numbers each entry. */
  async open(seq: () => number): Promise<void> {
    if (this.isOpen) return;
    await mkdir(this.dir, { recursive: true });
    await this.lock();
    this.cursor = await this.readCursor();
    const names = await readdir(this.dir);
    const segments = names
      .map((n) => SEGMENT_RE.exec(n)?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    const loaded: Batch[] = [];
    if (names.includes('head.rec')) await this.load(HEAD_SEGMENT, 0, loaded, seq);
    for (const segment of segments) {
      if (segment < this.cursor.segment) {
        await unlink(this.segmentPath(segment));
        continue;
      }
      await this.load(segment, segment === this.cursor.segment ? this.cursor.offset : 0, loaded, seq);
      this.nextSegment = segment + 1;
    }
    // Numbers only grow: a new segment numbered below the cursor would be taken for a consumed one.
    this.nextSegment = Math.max(this.nextSegment, this.cursor.segment + 1);
    this.entries = loaded;
    this.queuedPoints = loaded.reduce((sum, b) => sum + b.count, 0);
    this.isOpen = true;
  }

  /** Queues a batch for writing (in order); it becomes the tail of the spool at once. */
  append(batch: Batch, options: { unbounded?: boolean } = {}): void {
    if (!options.unbounded && !this.canTake(batch.count)) {
      batch.written = Promise.resolve(false);
      this.hooks.dropped(batch, 'the disk spool cannot keep up');
      return;
    }
    this.entries.push(batch);
    this.queuedPoints += batch.count;
    this.unwrittenPoints += batch.count;
    batch.written = this.enqueue(async () => {
      try {
        return await this.writeRecord(batch);
      } finally {
        this.unwrittenPoints -= batch.count;
        this.hooks.drained?.();
      }
    });
  }

  /**
   * Persists the batch that was in flight at shutdown, ahead of everything else. Only valid while
   * stopping, and only for a batch taken from memory (hence older than every entry of the spool).
   */
  writeHead(batch: Batch): Promise<void> {
    return this.enqueue(async () => {
      const body = await batch.body!;
      const record = encodeRecord(body, batch.count);
      if (this.diskBytes + record.length > this.maxBytes) {
        this.hooks.dropped(batch, 'the disk spool is full');
        return;
      }
      await writeFile(this.segmentPath(HEAD_SEGMENT), record);
      this.grow(HEAD_SEGMENT, record.length);
    });
  }

  /** The gzipped body of a written entry, checked against its CRC. */
  async read(batch: Batch): Promise<Buffer> {
    if (!batch.spooled) throw new Error('batch is not on disk');
    const { segment, offset, length } = batch.spooled;
    const handle = await open(this.segmentPath(segment), 'r');
    try {
      const record = Buffer.alloc(HEADER + length);
      const { bytesRead } = await handle.read(record, 0, record.length, offset - HEADER);
      if (bytesRead !== record.length) throw new Error(`spool record in segment ${segment} is truncated`);
      const body = record.subarray(HEADER);
      if (record.readUInt32BE(12) !== crc32(body))
        throw new Error(`spool record in segment ${segment} is corrupt`);
      return body;
    } finally {
      await handle.close();
    }
  }

  /** The head entry was delivered (or given up): forget it, move the cursor, delete used-up segments. */
  ack(batch: Batch): void {
    if (this.entries[0] !== batch) throw new Error('only the head of the spool can be acknowledged');
    this.entries.shift();
    this.queuedPoints -= batch.count;
    batch.done = true;
    const at = batch.spooled;
    if (!at) return;
    this.waitingBytes -= HEADER + at.length;
    if (at.segment !== HEAD_SEGMENT) this.cursor = { segment: at.segment, offset: at.offset + at.length };
    void this.enqueue(() => this.release(at.segment));
  }

  /** Waits for pending writes, saves the cursor, releases the lock. The spool can be opened again. */
  async close(): Promise<void> {
    if (!this.isOpen) return;
    await this.enqueue(async () => {
      await this.saveCursor();
      await this.active?.handle.close();
      this.active = undefined;
    });
    this.isOpen = false;
    this.entries = [];
    this.queuedPoints = 0;
    this.sizes.clear();
    this.diskBytes = 0;
    this.waitingBytes = 0;
    await rm(path.join(this.dir, 'LOCK'), { force: true });
  }

  private async writeRecord(batch: Batch): Promise<boolean> {
    if (batch.done) return false;
    let record: Buffer;
    try {
      record = encodeRecord(await batch.body!, batch.count);
    } catch (err) {
      return this.giveUp(batch, `could not compress the batch: ${(err as Error).message}`);
    }
    if (batch.done) return false;
    if (this.diskBytes + record.length > this.maxBytes) return this.giveUp(batch, 'the disk spool is full');
    try {
      if (!this.active || (this.active.size > 0 && this.active.size + record.length > this.segmentBytes)) {
        await this.active?.handle.close();
        const segment = this.nextSegment++;
        this.active = { segment, handle: await open(this.segmentPath(segment), 'w'), size: 0 };
        this.sizes.set(segment, 0);
      }
      const active = this.active;
      await active.handle.write(record, 0, record.length, active.size);
      batch.spooled = {
        segment: active.segment,
        offset: active.size + HEADER,
        length: record.length - HEADER,
      };
      active.size += record.length;
      this.grow(active.segment, record.length);
      this.waitingBytes += record.length;
      batch.body = undefined;
      return true;
    } catch (err) {
      // A failed write may have left part of a record: start a fresh segment for the next one.
      await this.active?.handle.close().catch(() => undefined);
      this.active = undefined;
      return this.giveUp(batch, `could not write to the disk spool: ${(err as Error).message}`);
    }
  }

  private giveUp(batch: Batch, reason: string): false {
    const i = this.entries.indexOf(batch);
    if (i >= 0) {
      this.entries.splice(i, 1);
      this.queuedPoints -= batch.count;
    }
    this.hooks.dropped(batch, reason);
    return false;
  }

  private async release(segment: number): Promise<void> {
    if (segment === HEAD_SEGMENT) {
      await this.remove(segment);
      return;
    }
    if (this.active?.segment === segment) {
      if (this.entries.length === 0) {
        await this.active.handle.close();
        this.active = undefined;
        await this.remove(segment);
      }
    } else if (this.entries[0]?.spooled?.segment !== segment) {
      await this.remove(segment);
    }
    await this.saveCursor();
  }

  private async remove(segment: number): Promise<void> {
    await unlink(this.segmentPath(segment)).catch(() => undefined);
    this.diskBytes -= this.sizes.get(segment) ?? 0;
    this.sizes.delete(segment);
  }

  private grow(segment: number, bytes: number): void {
    this.sizes.set(segment, (this.sizes.get(segment) ?? 0) + bytes);
    this.diskBytes += bytes;
  }

  private async load(segment: number, from: number, into: Batch[], seq: () => number): Promise<void> {
    const file = this.segmentPath(segment);
    const size = (await stat(file)).size;
    const handle = await open(file, 'r');
    const header = Buffer.alloc(HEADER);
    let offset = from;
    const before = into.length;
    try {
      while (offset + HEADER <= size) {
        await handle.read(header, 0, HEADER, offset);
        const length = header.readUInt32BE(4);
        if (header.readUInt32BE(0) !== MAGIC || offset + HEADER + length > size) break;
        const count = header.readUInt32BE(8);
        into.push({
          seq: seq(),
          count,
          spooled: { segment, offset: offset + HEADER, length },
          written: Promise.resolve(true),
        });
        offset += HEADER + length;
        this.waitingBytes += HEADER + length;
      }
    } finally {
      await handle.close();
    }
    if (into.length === before) {
      await unlink(file);
      return;
    }
    if (offset < size) await truncate(file, offset);
    this.sizes.set(segment, offset);
    this.diskBytes += offset;
  }

  private async lock(): Promise<void> {
    const file = path.join(this.dir, 'LOCK');
    try {
      await writeFile(file, String(process.pid), { flag: 'wx' });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = Number((await readFile(file, 'utf8').catch(() => '')).trim());
    if (owner && owner !== process.pid && isAlive(owner)) {
      throw new Error(`the spool directory ${this.dir} is in use by process ${owner}`);
    }
    await writeFile(file, String(process.pid));
  }

  private async readCursor(): Promise<{ segment: number; offset: number }> {
    const text = await readFile(path.join(this.dir, 'cursor'), 'utf8').catch(() => '');
    const [segment, offset] = text.trim().split(' ').map(Number);
    return Number.isSafeInteger(segment) && Number.isSafeInteger(offset)
      ? { segment, offset }
      : { segment: 0, offset: 0 };
  }

  private async saveCursor(): Promise<void> {
    await writeFile(path.join(this.dir, 'cursor'), `${this.cursor.segment} ${this.cursor.offset}\n`);
  }

  private segmentPath(segment: number): string {
    return path.join(
      this.dir,
      segment === HEAD_SEGMENT ? 'head.rec' : `${String(segment).padStart(16, '0')}.seg`,
    );
  }

  /** File operations run one at a time, in the order they were asked for. */
  private enqueue<T>(task: () => Promise<T>): Promise<T> {
    const result = this.chain.then(task);
    this.chain = result.catch(() => undefined);
    return result;
  }
}

function encodeRecord(body: Buffer, count: number): Buffer {
  const header = Buffer.alloc(HEADER);
  header.writeUInt32BE(MAGIC, 0);
  header.writeUInt32BE(body.length, 4);
  header.writeUInt32BE(count, 8);
  header.writeUInt32BE(crc32(body), 12);
  return Buffer.concat([header, body]);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
