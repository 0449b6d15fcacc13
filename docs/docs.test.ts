import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';

/**
 * The documents hold together: every relative link of the README and of docs/ leads to a file (and, with a
 * `#fragment`, to a heading of it), and every environment variable the code reads is documented once, in the
 * configuration reference (docs/configuration.md), which the README links to.
 */

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const read = (rel: string) => readFileSync(path.join(root, rel), 'utf8');

const documents = [
  'README.md',
  'collectd-plugins/README.md',
  ...readdirSync(path.join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

/** Markdown without its fenced code blocks, where a `[x](y)` or a `# line` is not markdown. */
function withoutFences(text: string): string {
  return text.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
}

/** The anchors GitHub gives a document's headings: lower case, punctuation dropped, spaces as `-`, repeats `-1`…. */
function anchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const [, heading] of withoutFences(text).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const slug = heading
      .replace(/`([^`]*)`/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    out.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return out;
}

/** Every `[text](target)` and `![alt](target)` of a document that is not a URL: `{target, line}`. */
function relativeLinks(text: string): { target: string; line: number }[] {
  const lines = withoutFences(text)
    .replace(/`[^`\n]*`/g, '')
    .split('\n');
  return lines.flatMap((l, i) =>
    [...l.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)]
      .map((m) => m[1])
      .filter((t) => !/^[a-z][a-z0-9+.-]*:/i.test(t))
      .map((target) => ({ target, line: i + 1 })),
  );
}

test('every relative link of the README and of docs/ leads to a file, and its #fragment to a heading there', () => {
  const broken: string[] = [];
  for (const doc of documents) {
    for (const { target, line } of relativeLinks(read(doc))) {
      const [file, fragment] = target.split('#', 2) as [string, string | undefined];
      const rel = file
        ? path.posix.normalize(path.posix.join(path.posix.dirname(doc), decodeURI(file)))
        : doc;
      const where = `${doc}:${line}: ${target}`;
      try {
        statSync(path.join(root, rel));
      } catch {
        broken.push(`${where} (no such file: ${rel})`);
        continue;
      }
      if (fragment !== undefined && rel.endsWith('.md') && !anchors(read(rel)).has(fragment))
        broken.push(`${where} (no heading #${fragment} in ${rel})`);
    }
  }
  expect(broken).toEqual([]);
  // The README leads to the configuration reference, which the public contract's "every variable documented in the
  // README" relies on.
  expect(relativeLinks(read('README.md')).map((l) => l.target)).toContain('docs/configuration.md');
});

const NAME = /HERD_[A-Z0-9_]+|INFLUX_[A-Z0-9_]+|DATABASE_URL/;

/** Where the code is: every file under these folders but installed packages, vendored bundles and benchmark results. */
const CODE_DIRS = [
  'libvirt',
  'lib',
  'app',
  'schema',
  'ingest',
  'api',
  'dashboard',
  'bench',
  '.ci',
  'collectd-plugins',
];
function filesUnder(dir: string): string[] {
  return readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((e) =>
    !e.isDirectory()
      ? [`${dir}/${e.name}`]
      : ['node_modules', 'results', 'vendor'].includes(e.name)
        ? []
        : filesUnder(`${dir}/${e.name}`),
  );
}

/** The variables the code that runs reads from the environment (`env.NAME`, `env['NAME']`, shell's `$NAME`),
 * tests left out (their helpers in testing/ folders kept): name → the first file that reads it. */
function variablesRead(): Map<string, string> {
  const found = new Map<string, string>();
  const reading = new RegExp(String.raw`(?:\benv(?:\.|\[['"])|\$\{?)(${NAME.source})\b`, 'g');
  const code = CODE_DIRS.flatMap(filesUnder).filter(
    (f) =>
      (/\.(ts|sh)$/.test(f) && !f.endsWith('.test.ts')) ||
      ['.ci/run', 'collectd-plugins/herd-register'].includes(f),
  );
  for (const file of code) {
    for (const [, name] of read(file).matchAll(reading)) if (!found.has(name!)) found.set(name!, file);
  }
  return found;
}

/** A table's first cell that holds variables only: `` `A` ``, `` `A` / `B` ``, `` `A`, `B` and `C` ``. */
const DEFINING_CELL = /^\s*`[A-Z][A-Z0-9_*]*`(?:\s*(?:,|\/|and)\s*`[A-Z][A-Z0-9_*]*`)*\s*$/;

/** The variables a document defines: a table row whose first cell names variables and nothing else. */
function variablesDefined(): { name: string; doc: string }[] {
  return documents
    .filter((d) => d !== 'collectd-plugins/README.md')
    .flatMap((doc) =>
      read(doc)
        .split('\n')
        .map((l) => (l.startsWith('|') ? (l.split('|')[1] ?? '') : ''))
        .filter((cell) => DEFINING_CELL.test(cell))
        .flatMap((cell) => [...cell.matchAll(new RegExp(NAME.source, 'g'))].map((m) => m[0]))
        .map((name) => ({ name, doc })),
    );
}

test('every environment variable the code reads is in the configuration reference, and defined nowhere else', () => {
  const readByCode = variablesRead();
  // The scan finds what it should: herd's own settings and herd-register's.
  for (const name of [
    'DATABASE_URL',
    'INFLUX_URL',
    'HERD_DATA_DIR',
    'HERD_TOKEN_FILE',
    'HERD_LIBVIRT_TEST_SOCKET',
  ])
    expect(readByCode.has(name), name).toBe(true);
  const defined = variablesDefined();
  const problems: string[] = [];
  for (const [name, file] of readByCode) {
    if (name.startsWith('HERD_TEST_')) continue;
    const rows = defined.filter((d) => d.name === name);
    if (!rows.some((r) => r.doc === 'docs/configuration.md'))
      problems.push(`${name} (read in ${file}) is not in docs/configuration.md`);
    if (rows.length > 1)
      problems.push(`${name} is defined ${rows.length} times: ${rows.map((r) => r.doc).join(', ')}`);
  }
  expect(problems).toEqual([]);
});

test('every variable the configuration reference names is still read somewhere', () => {
  const everything = CODE_DIRS.flatMap(filesUnder)
    .filter((f) => !/\.(png|json|db|bin|pcap)$/.test(f))
    .map(read)
    .join('\n');
  const stale = variablesDefined()
    .filter((d) => d.doc === 'docs/configuration.md')
    .map((d) => d.name)
    .filter((name) => !new RegExp(`\\b${name}\\b`).test(everything));
  expect(stale).toEqual([]);
});
