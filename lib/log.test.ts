import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { expect, test } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '..');

test('herd’s logger redacts CHAP secrets at the top level and in nested objects (a request body)', () => {
  // createLogger writes to stdout: a child process logs, this test reads what it wrote.
  const script = `import('./lib/log.ts').then(({ createLogger }) => createLogger('info').info(
    { chapSecret: 'top-S1', body: { chapSecret: 'nested-S2' }, req: { body: { chapSecret: 'deeper-S3' } } },
    'storage pool'))`;
  const run = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: ROOT, encoding: 'utf8' });
  expect(run.status, run.stderr).toBe(0);
  const line = JSON.parse(run.stdout.trim());
  expect(line).toMatchObject({
    chapSecret: '[redacted]',
    body: { chapSecret: '[redacted]' },
    req: { body: { chapSecret: '[redacted]' } },
  });
  expect(run.stdout).not.toMatch(/S1|S2|S3/);
});
