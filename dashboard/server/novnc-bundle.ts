import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);

/**
 * noVNC's RFB client as one browser ES module (`export default RFB`). The npm package publishes its sources
 * converted to CommonJS (`lib/`, relative `require`s only) and no browser bundle, so herd bundles them itself:
 * every file of `lib/` wrapped as a CommonJS module in one registry, loaded from `lib/rfb.js` on first use. Built
 * once per process from what is installed; no build step, no bundler. The conversion keeps one top-level `await`
 * (`lib/util/browser.js` probes WebCodecs): each module body is an async function, which runs synchronously up to
 * such an await, and the bundle awaits them all before it exports RFB.
 */
export async function buildNoVncBundle(): Promise<string> {
  const pkg = path.dirname(require.resolve('@novnc/novnc/package.json'));
  const lib = path.join(pkg, 'lib');
  const files = (await readdir(lib, { recursive: true })).filter((f) => f.endsWith('.js')).sort();
  const modules = await Promise.all(
    files.map(async (file) => {
      const id = `lib/${file.split(path.sep).join('/')}`;
      const source = await readFile(path.join(lib, file), 'utf8');
      return `${JSON.stringify(id)}: async function (module, exports, require) {\n${source}\n}`;
    }),
  );
  const version = JSON.parse(await readFile(path.join(pkg, 'package.json'), 'utf8')).version;
  return `// noVNC ${version} (MPL-2.0, https://github.com/novnc/noVNC), lib/ bundled by herd (dashboard/server/novnc-bundle.ts)
const modules = {
${modules.join(',\n')}
};
const cache = {};
const pending = [];
function resolve(from, spec) {
  const parts = from.split('/').slice(0, -1);
  for (const part of spec.split('/')) {
    if (part === '..') parts.pop();
    else if (part !== '.') parts.push(part);
  }
  return parts.join('/');
}
function load(id) {
  if (cache[id]) return cache[id].exports;
  const factory = modules[id];
  if (!factory) throw new Error('noVNC bundle: no module ' + id);
  const module = (cache[id] = { exports: {} });
  pending.push(factory.call(module.exports, module, module.exports, (spec) => load(resolve(id, spec))));
  return module.exports;
}
const RFB = load('lib/rfb.js').default;
await Promise.all(pending);
export default RFB;
`;
}
