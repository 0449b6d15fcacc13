import { chmod, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/**
 * A new temporary directory that daemons running as other users (PostgreSQL as `postgres`) may enter: mkdtemp makes
 * it 0700, and it is ours to open up, unlike its parents, which herd never changes.
 */
export async function sharedTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  await chmod(dir, 0o755);
  return dir;
}
