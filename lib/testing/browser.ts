import { execFileSync } from 'node:child_process';
import path from 'node:path';
import type { LaunchOptions } from 'playwright-core';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** Debian's chromium, headless, as root, on a machine without a network beyond loopback. */
export const CHROMIUM = {
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
} satisfies LaunchOptions;

/** The dashboard's browser modules, compiled as `npm run build` does (before the app looks for them). */
export function compileDashboard(): void {
  execFileSync(process.execPath, [
    path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
    '-p',
    path.join(ROOT, 'dashboard', 'app'),
  ]);
}

/**
 * The environment of a browser test's `herd demo`: its data under `dir`, the test's own database and InfluxDB
 * database, ports the kernel picks, quiet logs, quick flushes; `extra` adds or overrides.
 */
export function demoTestEnv(
  dir: string,
  databaseUrl: string,
  influx: { url: string; db: string },
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    HERD_DATA_DIR: dir,
    DATABASE_URL: databaseUrl,
    INFLUX_URL: influx.url,
    INFLUX_DB: influx.db,
    HERD_HTTP_PORT: '0',
    HERD_COLLECTD_PORT: '0',
    HERD_LOG_LEVEL: process.env.HERD_TEST_LOG_LEVEL ?? 'silent',
    HERD_INFLUX_FLUSH_MS: '200',
    ...extra,
  };
}
