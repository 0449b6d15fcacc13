import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { buildNoVncBundle } from './novnc-bundle.js';

/** The package root, from the sources (dashboard/server) or the build (dist/dashboard/server). */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('herd: package.json not found above the dashboard server');
    dir = parent;
  }
  return dir;
}

const ROOT = packageRoot();
/** index.html and styles, as they are. */
export const PUBLIC_DIR = path.join(ROOT, 'dashboard', 'public');
/** The browser modules, compiled from dashboard/app by `npm run build`. */
export const APP_DIR = path.join(ROOT, 'dist', 'dashboard', 'app');

const require = createRequire(import.meta.url);
/** Each package's entry point sits in its build folder, beside the browser bundle. */
const bundle = (pkg: string, file: string) => path.join(path.dirname(require.resolve(pkg)), file);
/** The prebuilt browser bundles of the libraries the dashboard loads, served as they are published. */
const VENDOR: Record<string, string> = {
  'vega.min.js': bundle('vega', 'vega.min.js'),
  'vega-lite.min.js': bundle('vega-lite', 'vega-lite.min.js'),
  'vega-embed.min.js': bundle('vega-embed', 'vega-embed.min.js'),
};

/**
 * The dashboard's files, without authentication: `/` (index.html, styles), `/app/*` (the compiled
 * modules) and `/vendor/*` (vega; `novnc-rfb.js`, noVNC's RFB client as one ES module, for the VM console).
 * The page itself asks the API for everything else, as any client does.
 */
export async function serveDashboardFiles(app: FastifyInstance): Promise<void> {
  await app.register(fastifyStatic, {
    root: PUBLIC_DIR,
    prefix: '/',
    index: ['index.html'],
    wildcard: false,
  });
  const built = existsSync(path.join(APP_DIR, 'main.js'));
  if (built) {
    await app.register(fastifyStatic, {
      root: APP_DIR,
      prefix: '/app/',
      decorateReply: false,
      cacheControl: false,
    });
  } else {
    app.get('/app/main.js', { schema: { hide: true } }, async (_request, reply) =>
      reply
        .type('text/javascript')
        .send(
          `document.body.textContent = 'The dashboard is not built: run "npm run build" and start herd again.';`,
        ),
    );
  }
  let novnc: Promise<string> | undefined;
  app.get('/vendor/novnc-rfb.js', { schema: { hide: true } }, async (_request, reply) => {
    novnc ??= buildNoVncBundle();
    novnc.catch(() => {
      novnc = undefined;
    });
    return reply
      .type('text/javascript; charset=utf-8')
      .header('cache-control', 'public, max-age=86400')
      .send(await novnc);
  });
  let interpreter: Promise<string> | undefined;
  app.get('/vendor/vega-interpreter.js', { schema: { hide: true } }, async (_request, reply) => {
    interpreter ??= vegaInterpreterModule();
    interpreter.catch(() => {
      interpreter = undefined;
    });
    return reply
      .type('text/javascript; charset=utf-8')
      .header('cache-control', 'public, max-age=86400')
      .send(await interpreter);
  });
  app.get<{ Params: { file: string } }>(
    '/vendor/:file',
    { schema: { hide: true } },
    async (request, reply) => {
      const file = VENDOR[request.params.file];
      if (!file) return reply.callNotFound();
      reply.header('cache-control', 'public, max-age=86400');
      return reply.sendFile(path.basename(file), path.dirname(file));
    },
  );
}

/**
 * vega's CSP-safe expression interpreter (vega-interpreter: evaluates expressions from their syntax tree, so the
 * page needs no 'unsafe-eval'), as a browser module: its one import, from vega-util, is taken from the vega
 * bundle the page has already loaded (the global `vega` exports the same functions).
 */
async function vegaInterpreterModule(): Promise<string> {
  const file = path.join(path.dirname(require.resolve('vega-interpreter')), 'vega-interpreter.js');
  const source = await readFile(file, 'utf8');
  const imports = /^import \{([^}]*)\} from 'vega-util';$/m;
  if (!imports.test(source)) throw new Error('vega-interpreter: its import of vega-util has changed');
  return source.replace(imports, (_line, names: string) => `const {${names}} = globalThis.vega;`);
}
