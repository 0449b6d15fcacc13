import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, test } from 'vitest';
import { embeddedFallbackDir } from '../schema/db.js';
import { sharedTempDir } from './testing/temp-dir.js';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** A process that ran an embedded PostgreSQL keeps its exit code (no exit hooks of a library cut it short). */
test('a process that ran an embedded PostgreSQL keeps its exit code', async () => {
  const dir = await sharedTempDir('herd-embedded-exit-');
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

/** Every directory from `/` down to `dir`, with its mode and owner. */
async function modes(dirs: string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const d of dirs) {
    const s = await stat(d).catch(() => null);
    out[d] = s ? `${(s.mode & 0o7777).toString(8)} ${s.uid}:${s.gid}` : 'absent';
  }
  return out;
}

function ancestors(dir: string): string[] {
  const chain: string[] = [];
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    chain.push(d);
    if (d === path.dirname(d)) return chain;
  }
}

/** Files below `dir` that anyone may read, with their modes. */
async function worldReadable(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    if ((await stat(file)).mode & 0o004) found.push(file);
  }
  return found;
}

test.runIf(process.getuid?.() === 0)(
  'as root, from a checkout under a 0700 directory: herd starts its PostgreSQL without loosening any directory, and leaves no secret readable',
  async () => {
    // Like a checkout in /root: a private directory (mkdtemp makes it 0700) holding the built herd and its
    // node_modules (hard links: the files are at paths the postgres user cannot enter).
    const home = await mkdtemp(path.join(os.tmpdir(), 'herd-private-home-'));
    const checkout = path.join(home, 'herd');
    const varLibHerdExisted = existsSync('/var/lib/herd');
    const dataDir = path.join(checkout, 'data');
    const brokenDataDir = path.join(checkout, 'data-broken');
    try {
      await mkdir(checkout);
      for (const part of ['dist', 'node_modules']) {
        await run('cp', ['-al', path.join(root, part), path.join(checkout, part)]).catch(() =>
          run('cp', ['-a', path.join(root, part), path.join(checkout, part)]),
        );
      }
      await copyFile(path.join(root, 'package.json'), path.join(checkout, 'package.json'));
      const watched = [...ancestors(checkout), ...ancestors('/var/lib/herd'), os.tmpdir()];
      const before = await modes(watched);
      const tmpBefore = new Set(await readdir(os.tmpdir()));
      const herd = (data: string) =>
        spawnSync(process.execPath, [path.join(checkout, 'dist/app/cli.js'), 'migrate'], {
          cwd: checkout,
          encoding: 'utf8',
          timeout: 120_000,
          env: { ...process.env, HERD_DATA_DIR: data, DATABASE_URL: '', HERD_LOG_LEVEL: 'warn' },
        });

      const started = herd(dataDir);
      expect(started.status, started.stderr).toBe(0);
      // The postgres user cannot enter the checkout: the cluster went where herd could put it, and says so.
      const fallback = embeddedFallbackDir(dataDir);
      expect(existsSync(path.join(fallback, 'PG_VERSION'))).toBe(true);
      const password = (await readFile(path.join(path.dirname(fallback), 'pg-password'), 'utf8')).trim();
      expect((await stat(path.join(path.dirname(fallback), 'pg-password'))).mode & 0o077).toBe(0);

      // A start that fails in initdb (its cluster directory exists and is not empty).
      await mkdir(embeddedFallbackDir(brokenDataDir), { recursive: true });
      await run('touch', [path.join(embeddedFallbackDir(brokenDataDir), 'stray-file')]);
      const failed = herd(brokenDataDir);
      expect(failed.status).toBe(1);
      expect(failed.stderr.trim().split('\n').at(-1)).toMatch(/^herd: initdb failed \(exit 1\): .*not empty/);

      expect(await modes(watched)).toEqual({
        ...before,
        ...(varLibHerdExisted ? {} : { '/var/lib/herd': expect.any(String) }),
      });
      // No password file in /tmp (the old library wrote one there, 0644), none left beside the clusters.
      const newInTmp = (await readdir(os.tmpdir())).filter((f) => !tmpBefore.has(f));
      expect(newInTmp.filter((f) => /pg-password|pgpass/.test(f))).toEqual([]);
      for (const d of [path.dirname(fallback), path.dirname(embeddedFallbackDir(brokenDataDir))]) {
        expect((await readdir(d)).filter((f) => f.startsWith('.pg-initdb-password'))).toEqual([]);
      }
      // Nothing anyone may read holds the password.
      for (const d of [checkout, path.dirname(fallback), path.dirname(embeddedFallbackDir(brokenDataDir))]) {
        for (const file of await worldReadable(d)) {
          if (
            file.includes(`${path.sep}node_modules${path.sep}`) ||
            file.includes(`${path.sep}dist${path.sep}`)
          )
            continue;
          if (file.includes('postgres-binaries-')) continue;
          expect((await readFile(file)).includes(password), file).toBe(false);
        }
      }
    } finally {
      await rm(home, { recursive: true, force: true });
      for (const d of [dataDir, brokenDataDir])
        await rm(path.dirname(embeddedFallbackDir(d)), { recursive: true, force: true });
      if (!varLibHerdExisted) await rm('/var/lib/herd', { recursive: true, force: true });
    }
  },
  180_000,
);
