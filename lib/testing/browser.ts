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
