import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AuthFile, parseAuthFile } from './auth-file.js';
import { FIXTURES_DIR } from './test-fixtures.js';

describe('parseAuthFile', () => {
  it('reads `user: password` lines the way collectd does', () => {
    const users = parseAuthFile(
      [
        '# comment',
        '  alice:   s3cret  ',
        'bob:pa:ss word\r',
        'no colon here',
        'carol:',
        '',
        'alice: second',
        'dave : x',
      ].join('\n'),
    );
    expect([...users]).toEqual([
      ['alice', 's3cret  '],
      ['bob', 'pa:ss word'],
      ['dave ', 'x'],
    ]);
  });
});

describe('AuthFile', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it('loads the fixture auth file', async () => {
    const file = await AuthFile.load(join(FIXTURES_DIR, 'signed', 'auth_file'));
    expect([file.password('alice'), file.password('bob'), file.size]).toEqual(['s3cret', undefined, 1]);
  });

  it('rereads the file when it changed, as collectd does', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'herd-auth-'));
    dirs.push(dir);
    const path = join(dir, 'auth');
    await writeFile(path, 'alice: one\n');
    const file = await AuthFile.load(path);
    expect(await file.refresh()).toBe(false);
    await writeFile(path, 'alice: two\nbob: three\n');
    await utimes(path, new Date(), new Date(Date.now() + 5_000));
    expect(await file.refresh()).toBe(true);
    expect([file.password('alice'), file.password('bob')]).toEqual(['two', 'three']);
  });
});
