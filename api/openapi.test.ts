import { execFile } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import SwaggerParser from '@apidevtools/swagger-parser';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { generateApiTypes } from '../dashboard/server/api-types.js';
import { createTestApp, type TestApp } from '../lib/testing/app.js';
import { sharedTempDir } from '../lib/testing/temp-dir.js';
import { openApiDocument } from './openapi-document.js';

const TSC = path.resolve(import.meta.dirname, '../node_modules/.bin/tsc');

let t: TestApp;
let doc: Record<string, any>;

beforeAll(async () => {
  t = await createTestApp();
  const res = await t.app.inject({ method: 'GET', url: '/api/docs/json' });
  expect(res.statusCode).toBe(200);
  doc = res.json();
}, 60_000);

afterAll(async () => {
  await t?.close();
});

test('/api/docs/json is a valid OpenAPI 3.1 document (swagger-parser finds no error)', async () => {
  // The route schemas are JSON Schema 2020-12 (numeric exclusiveMinimum, type arrays): 3.1's dialect.
  expect(doc.openapi).toBe('3.1.0');
  // validate() dereferences a copy and throws with every error it finds.
  const validated = await SwaggerParser.validate(structuredClone(doc) as never);
  expect(Object.keys(validated.paths ?? {}).length).toBe(Object.keys(doc.paths).length);
});

test('the document the build generates the dashboard types from is the one served', async () => {
  expect(await openApiDocument()).toEqual(doc);
}, 60_000);

test('a fetch client generated from the document compiles, its types follow the route schemas', async () => {
  const dir = await sharedTempDir('herd-openapi-');
  try {
    await writeFile(path.join(dir, 'api.ts'), await generateApiTypes(doc, { client: true }));
    // A task's action is one the schema lists; an unknown one does not compile.
    await writeFile(
      path.join(dir, 'use.ts'),
      [
        "import { Api, type V1TasksDetailData } from './api.js';",
        "export const api = new Api({ baseUrl: 'http://127.0.0.1:1' });",
        'export const tasks = (id: number) => api.api.v1TasksDetail(id);',
        "export const action: V1TasksDetailData['action'] = 'migrate';",
        '// @ts-expect-error: not a task action',
        "export const wrong: V1TasksDetailData['action'] = 'evacuate';",
        '',
      ].join('\n'),
    );
    const compilerOptions = {
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      target: 'ES2022',
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      lib: ['ES2023', 'DOM'],
      types: [],
    };
    await writeFile(path.join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions, files: ['use.ts'] }));
    const { stdout } = await promisify(execFile)(TSC, ['-p', dir]).catch((err: { stdout: string }) => ({
      stdout: `tsc failed:\n${err.stdout}`,
    }));
    expect(stdout).toBe('');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}, 120_000);
