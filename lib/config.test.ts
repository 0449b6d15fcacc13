import { hostname } from 'node:os';
import { expect, test } from 'vitest';
import { ConfigError, DEFAULTS, loadConfig } from './config.js';

test('defaults follow the contract', () => {
  const c = loadConfig({});
  expect(c.databaseUrl).toBeUndefined();
  expect(c.influx).toBeUndefined();
  expect(c.influxDb).toBe('collectd');
  expect(c.http).toEqual({ host: '127.0.0.1', port: 8080 });
  expect(c.collectd).toMatchObject({
    host: '0.0.0.0',
    port: 25826,
    securityLevel: 'none',
    multiValue: 'split',
  });
  expect(c.dataDir.endsWith('/data')).toBe(true);
  expect(c.collectd.rcvbuf).toBe(DEFAULTS.collectdRcvbuf);
});

test('every bad variable is listed in one error', () => {
  let error: unknown;
  try {
    loadConfig({
      HERD_HTTP_PORT: 'eighty',
      HERD_COLLECTD_SECURITY_LEVEL: 'paranoid',
      INFLUX_URL: 'not a url',
    });
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(ConfigError);
  const problems = (error as ConfigError).problems.join('\n');
  expect(problems).toContain('HERD_HTTP_PORT');
  expect(problems).toContain('HERD_COLLECTD_SECURITY_LEVEL');
  expect(problems).toContain('INFLUX_URL');
});

test('signing without an auth file is refused', () => {
  expect(() => loadConfig({ HERD_COLLECTD_SECURITY_LEVEL: 'sign' })).toThrow(/HERD_COLLECTD_AUTH_FILE/);
});

test('INFLUX_URL selects InfluxDB; a trailing slash is dropped', () => {
  const c = loadConfig({ INFLUX_URL: 'http://127.0.0.1:8086/', INFLUX_DB: 'metrics' });
  expect(c.influx).toMatchObject({ url: 'http://127.0.0.1:8086', db: 'metrics' });
});

test('HERD_WEBHOOK_ALLOW: comma-separated addresses and CIDRs, anything else refused', () => {
  expect(loadConfig({}).alerting.webhookAllow).toEqual([]);
  expect(loadConfig({ HERD_WEBHOOK_ALLOW: '127.0.0.1, 169.254.0.0/16,::1' }).alerting.webhookAllow).toEqual([
    '127.0.0.1',
    '169.254.0.0/16',
    '::1',
  ]);
  expect(() => loadConfig({ HERD_WEBHOOK_ALLOW: 'localhost' })).toThrow(/HERD_WEBHOOK_ALLOW/);
});

test('HERD_PXE_BASE_URL: given, or herd’s listen address (a wildcard one by the machine’s name)', () => {
  expect(loadConfig({}).pxe.baseUrl).toBe('http://127.0.0.1:8080');
  expect(loadConfig({ HERD_HTTP_HOST: '::1', HERD_HTTP_PORT: '9000' }).pxe.baseUrl).toBe('http://[::1]:9000');
  expect(loadConfig({ HERD_HTTP_HOST: '0.0.0.0' }).pxe.baseUrl).toBe(`http://${hostname()}:8080`);
  expect(loadConfig({ HERD_PXE_BASE_URL: 'http://10.0.2.2:8080/herd/' }).pxe.baseUrl).toBe(
    'http://10.0.2.2:8080/herd',
  );
  for (const bad of ['ftp://x', 'http://a b', 'http://x/?q=1', 'http://x,y']) {
    expect(() => loadConfig({ HERD_PXE_BASE_URL: bad }), bad).toThrow(/HERD_PXE_BASE_URL/);
  }
});
