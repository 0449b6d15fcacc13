import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from '../log.js';

/** A logger at `info` whose lines (JSON text, one per entry) are kept in `lines` for the test to read. */
export function capturingLogger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { log: pino({ level: 'info' }, stream), lines };
}
