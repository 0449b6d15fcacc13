import { afterAll, beforeAll, expect, test } from 'vitest';
import { createTestApp, type TestApp } from '../lib/testing/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({
    routes: [
      (app) => {
        app.get('/api/v1/boom', async () => {
          throw new Error('secret connection string postgres://u:p@db');
        });
        app.post(
          '/api/v1/echo',
          {
            schema: {
              body: {
                type: 'object',
                required: ['name'],
                properties: { name: { type: 'string' }, n: { type: 'integer' } },
              },
            },
          },
          async (req) => req.body,
        );
      },
    ],
  });
});
afterAll(() => t.close());

test('health answers without authentication', async () => {
  const res = await t.app.inject({ method: 'GET', url: '/api/health' });
  expect(res.statusCode).toBe(200);
  expect(res.json()).toEqual({ ok: true, database: true, influx: null, ingest: null });
});

test('a thrown error answers 500 and leaks nothing', async () => {
  const res = await t.app.inject({ method: 'GET', url: '/api/v1/boom' });
  expect(res.statusCode).toBe(500);
  expect(res.body).not.toContain('postgres://');
  expect(res.json()).toEqual({ error: 'internal', message: 'internal error' });
});

test('bad bodies answer 400 naming the field', async () => {
  const missing = await t.app.inject({ method: 'POST', url: '/api/v1/echo', payload: { n: 1 } });
  expect(missing.statusCode).toBe(400);
  expect(missing.json()).toMatchObject({ error: 'bad_request', field: 'name' });
  const wrongType = await t.app.inject({
    method: 'POST',
    url: '/api/v1/echo',
    payload: { name: 'x', n: 'lots' },
  });
  expect(wrongType.statusCode).toBe(400);
  expect(wrongType.json().message).toContain('n');
  const badJson = await t.app.inject({
    method: 'POST',
    url: '/api/v1/echo',
    headers: { 'content-type': 'application/json' },
    payload: '{"name": ',
  });
  expect(badJson.statusCode).toBe(400);
});

test('unknown paths answer 404 JSON; /metrics is Prometheus text', async () => {
  const res = await t.app.inject({ method: 'GET', url: '/api/v1/nope' });
  expect(res.statusCode).toBe(404);
  expect(res.json().error).toBe('not_found');
  const metrics = await t.app.inject({ method: 'GET', url: '/metrics' });
  expect(metrics.statusCode).toBe(200);
  expect(metrics.headers['content-type']).toContain('text/plain');
});

test('the OpenAPI document is served', async () => {
  const res = await t.app.inject({ method: 'GET', url: '/api/docs/json' });
  expect(res.statusCode).toBe(200);
  expect(res.json().paths['/api/health']).toBeDefined();
});

test('every answer carries the security headers; pages may not be framed nor load foreign scripts', async () => {
  for (const url of ['/api/health', '/api/v1/nope', '/metrics']) {
    const res = await t.app.inject({ method: 'GET', url });
    expect(res.headers['x-content-type-options'], url).toBe('nosniff');
    expect(res.headers['x-frame-options'], url).toBe('DENY');
    const csp = String(res.headers['content-security-policy']);
    expect(csp, url).toContain("frame-ancestors 'none'");
    expect(csp, url).toContain("script-src 'self'");
    // vega draws with its expression interpreter: no script may be compiled from a string.
    expect(csp, url).not.toContain('unsafe-eval');
    expect(csp, url).not.toContain('*');
  }
});
