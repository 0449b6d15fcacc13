/**
 * Decodes the short, endlessly repeated strings of collectd packets (host, plugin, type, instances)
 * without a call into the runtime's UTF-8 decoder for each one: a direct-mapped table remembers the bytes
 * and the string of recently seen names. On a hit no allocation happens; on a miss (or a collision) the
 * slot is overwritten, so hostile input only costs misses, never memory.
 */
const SLOTS = 8192;
const SLOT_BYTES = 64;

export class StringCache {
  private readonly bytes = new Uint8Array(SLOTS * SLOT_BYTES);
  private readonly lengths = new Uint8Array(SLOTS);
  private readonly strings: string[] = new Array<string>(SLOTS).fill('');

  /** The UTF-8 string in `buf[start, end)`. */
  get(buf: Buffer, start: number, end: number): string {
    const length = end - start;
    if (length === 0) return '';
    if (length > SLOT_BYTES) return buf.toString('utf8', start, end);
    let hash = 0x811c9dc5 ^ length;
    for (let i = start; i < end; i++) hash = Math.imul(hash ^ buf[i], 0x01000193);
    const slot = (hash >>> 0) & (SLOTS - 1);
    const at = slot * SLOT_BYTES;
    const bytes = this.bytes;
    if (this.lengths[slot] === length) {
      let i = 0;
      while (i < length && bytes[at + i] === buf[start + i]) i++;
      if (i === length) return this.strings[slot];
    }
    const text = buf.toString('utf8', start, end);
    bytes.set(buf.subarray(start, end), at);
    this.lengths[slot] = length;
    this.strings[slot] = text;
    return text;
  }
}
