/**
 * collectd's auth file (network plugin `AuthFile`): one `user: password` a line. Parsed the way collectd's
 * utils_fbhash.c does: leading blanks skipped, `#` starts a comment line, the user is everything before
 * the first colon (trailing blanks included, as in collectd), the password is the rest of the line after
 * leading blanks, lines without a colon or without a password are ignored, and the first line of a user
 * wins.
 */
import { readFile, stat } from 'node:fs/promises';

/** What the decoder needs from an auth file: the password of a user, undefined for an unknown user. */
export interface UserLookup {
  password(username: string): string | undefined;
}

export function parseAuthFile(text: string): Map<string, string> {
  const users = new Map<string, string>();
  for (const rawLine of text.split('\n')) {
    const line = rawLine.replace(/[\r\n]+$/, '').replace(/^\s+/, '');
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const user = line.slice(0, colon);
    const password = line.slice(colon + 1).replace(/^\s+/, '');
    if (password === '' || users.has(user)) continue;
    users.set(user, password);
  }
  return users;
}

/**
 * An auth file on disk. collectd rereads the file when its modification time changes; `refresh()` does
 * the same and is meant to be called from a timer, so that lookups on the packet path stay synchronous.
 */
export class AuthFile implements UserLookup {
  private constructor(
    readonly path: string,
    private users: Map<string, string>,
    private mtimeMs: number,
  ) {}

  static async load(path: string): Promise<AuthFile> {
    const [text, info] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
    return new AuthFile(path, parseAuthFile(text), info.mtimeMs);
  }

  password(username: string): string | undefined {
    return this.users.get(username);
  }

  get size(): number {
    return this.users.size;
  }

  /** Rereads the file if it changed since it was read; resolves to whether it did. */
  async refresh(): Promise<boolean> {
    const info = await stat(this.path);
    if (info.mtimeMs === this.mtimeMs) return false;
    const text = await readFile(this.path, 'utf8');
    this.users = parseAuthFile(text);
    this.mtimeMs = info.mtimeMs;
    return true;
  }
}
