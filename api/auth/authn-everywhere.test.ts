import type { RouteOptions } from 'fastify';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestApp, type TestApp } from '../../lib/testing/app.js';
import { apiRoutes } from '../routes.js';

// Every route of every domain, seen as it is registered.
const routes: RouteOptions[] = [];
let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({
    routes: [(app) => void app.addHook('onRoute', (r) => void routes.push(r)), ...apiRoutes],
  });
});
afterAll(() => t.close());

const PUBLIC = new Set(['POST /api/v1/session']);
const apiEndpoints = () =>
  routes
    .filter((r) => r.url.startsWith('/api/v1/'))
    .flatMap((r) =>
      (Array.isArray(r.method) ? r.method : [r.method]).map((method) => ({ method, url: r.url, route: r })),
    )
    .filter((e) => e.method !== 'HEAD');

test('every /api/v1 endpoint but the login answers 401 without credentials', async () => {
  const endpoints = apiEndpoints().filter((e) => !PUBLIC.has(`${e.method} ${e.url}`));
  expect(endpoints.length).toBeGreaterThan(20);
  for (const { method, url } of endpoints) {
    const concrete = url.replace(/:[A-Za-z]+/g, '1');
    const res = await t.app.inject({
      method: method as 'GET',
      url: concrete,
      payload: method === 'GET' ? undefined : {},
    });
    expect(res.statusCode, `${method} ${url}`).toBe(401);
    expect(res.json().error).toBe('unauthorized');
  }
});

test('the OpenAPI document lists every endpoint with its schemas', async () => {
  const doc = (await t.app.inject({ method: 'GET', url: '/api/docs/json' })).json();
  for (const { method, url, route } of apiEndpoints()) {
    const path = url.replace(/:([A-Za-z]+)/g, '{$1}');
    const op = doc.paths[path]?.[method.toLowerCase()];
    expect(op, `${method} ${path} in the OpenAPI document`).toBeDefined();
    expect(Object.keys(op.responses ?? {}).length, `${method} ${path} responses`).toBeGreaterThan(0);
    if (url.includes(':')) expect(route.schema?.params, `${method} ${url} params schema`).toBeDefined();
  }
});
