import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

export interface RecordedRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  /** The body as InfluxDB received it, gunzipped when it was gzipped. */
  body: string;
  status: number;
}

export interface RecordingProxy {
  url: string;
  requests: RecordedRequest[];
  /** While set, answers every request with this status instead of forwarding it (InfluxDB "down"). */
  failWith?: number;
  /** The line-protocol lines of the writes InfluxDB accepted, in order. */
  acceptedLines(): string[];
  close(): Promise<void>;
}

/**
 * A loopback HTTP proxy in front of a real InfluxDB for tests: it records what herd sends (headers,
 * bodies, order) and passes the real answer back; an unreachable InfluxDB becomes a 502.
 */
export async function recordingProxy(target: string): Promise<RecordingProxy> {
  const requests: RecordedRequest[] = [];
  const proxy: RecordingProxy = {
    url: '',
    requests,
    acceptedLines: () =>
      requests
        .filter((r) => r.path.startsWith('/write') && r.status >= 200 && r.status < 300)
        .flatMap((r) => r.body.split('\n').filter(Boolean)),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw).toString() : raw.toString();
    // Recorded on arrival, so the order is the order herd sent in; the status is filled in after.
    const recorded: RecordedRequest = {
      method: req.method ?? '',
      path: req.url ?? '',
      headers: req.headers,
      body,
      status: 0,
    };
    requests.push(recorded);
    let status: number;
    let answer: Buffer;
    let contentType = 'application/json';
    if (proxy.failWith) {
      status = proxy.failWith;
      answer = Buffer.from(JSON.stringify({ error: 'proxy says no' }));
    } else {
      try {
        const headers: Record<string, string> = {};
        for (const h of ['content-type', 'content-encoding', 'authorization']) {
          const v = req.headers[h];
          if (typeof v === 'string') headers[h] = v;
        }
        const upstream = await fetch(target + req.url, {
          method: req.method,
          headers,
          body: raw.length ? raw : undefined,
        });
        status = upstream.status;
        answer = Buffer.from(await upstream.arrayBuffer());
        contentType = upstream.headers.get('content-type') ?? contentType;
      } catch {
        status = 502;
        answer = Buffer.from(JSON.stringify({ error: 'influxd unreachable' }));
      }
    }
    recorded.status = status;
    res.writeHead(status, { 'content-type': contentType });
    res.end(status === 204 ? undefined : answer);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}

/** Runs InfluxQL straight against InfluxDB (not through herd), for assertions. */
export async function influxQuery(url: string, db: string, q: string): Promise<any> {
  const res = await fetch(`${url}/query`, {
    method: 'POST',
    body: new URLSearchParams({ q, db, epoch: 'u' }),
  });
  const json = await res.json();
  if (json.results?.[0]?.error) throw new Error(json.results[0].error);
  return json.results?.[0] ?? {};
}

/** Polls until `check` returns true, or fails after `timeoutMs`. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await Promise.resolve(check()).catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}
