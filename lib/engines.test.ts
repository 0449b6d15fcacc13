import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import semver from 'semver';
import { expect, test } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** `npm install` on the Node herd declares prints no EBADENGINE: every locked package runs on it. */
test('every locked dependency accepts the Node.js herd runs on', () => {
  const lock = JSON.parse(readFileSync(path.join(root, 'package-lock.json'), 'utf8'));
  const declared = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).engines.node as string;
  expect(semver.satisfies(process.version, declared)).toBe(true);
  const packages = lock.packages as Record<string, { engines?: { node?: string }; os?: string[] }>;
  const refused = Object.entries(packages)
    .filter(([name, p]) => name && typeof p.engines?.node === 'string')
    .filter(([, p]) => !p.os || p.os.includes(process.platform))
    .filter(([, p]) => !semver.satisfies(process.version, p.engines!.node!))
    .map(([name, p]) => `${name}: node ${p.engines!.node}`);
  expect(refused).toEqual([]);
});
