/**
 * vega-embed's options for every graph: SVG, no action menu, and expressions evaluated by vega's interpreter
 * from their syntax tree (`ast: true`), so the page's Content-Security-Policy needs no 'unsafe-eval'.
 */
type Interpreter = { expressionInterpreter: unknown };
let interpreter: Promise<Interpreter> | undefined;

export async function embedOptions(): Promise<Record<string, unknown>> {
  // A URL the server answers (dashboard/server/static.ts), loaded once; a variable keeps tsc from resolving it.
  const url = '/vendor/vega-interpreter.js';
  interpreter ??= import(url) as Promise<Interpreter>;
  return { renderer: 'svg', actions: false, ast: true, expr: (await interpreter).expressionInterpreter };
}
