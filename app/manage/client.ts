import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** Where herd's API is when neither `--url` nor `HERD_URL` says (herd serve's default address). */
export const DEFAULT_URL = 'http://127.0.0.1:8080';

/** An answer of the API that is not a success, with what the API said. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly body: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** A problem before any answer: bad settings, herd not reachable. */
export class ClientError extends Error {
  override name = 'ClientError';
}

export interface ClientOptions {
  url?: string;
  token?: string;
}

export interface SavedCredentials {
  url: string;
  token: string;
}

/** `herd login --save` keeps the token here (mode 0600), for the URL it was made on. */
export function credentialsFile(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return path.join(base, 'herd', 'credentials.json');
}

export async function readSavedCredentials(
  env: NodeJS.ProcessEnv = process.env,
): Promise<SavedCredentials | undefined> {
  try {
    const saved = JSON.parse(await readFile(credentialsFile(env), 'utf8')) as Partial<SavedCredentials>;
    return typeof saved.url === 'string' && typeof saved.token === 'string'
      ? { url: saved.url, token: saved.token }
      : undefined;
  } catch {
    return undefined;
  }
}

export async function saveCredentials(
  saved: SavedCredentials,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  const file = credentialsFile(env);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFile(file, `${JSON.stringify(saved)}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  return file;
}

/**
 * The URL and token to use: flags first, then `HERD_URL` / `HERD_TOKEN`, then what `herd login --save` kept
 * (its token only for the URL it was made on), then the default URL. The URL must be http(s).
 */
export async function resolveSettings(
  options: ClientOptions,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ url: string; token?: string }> {
  const saved = await readSavedCredentials(env);
  const raw = options.url ?? (env.HERD_URL || undefined) ?? saved?.url ?? DEFAULT_URL;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ClientError(`--url / HERD_URL: not a URL: ${raw}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new ClientError(`--url / HERD_URL: must be http:// or https://, not ${raw}`);
  const base = url.href.replace(/\/+$/, '');
  const token =
    options.token ?? (env.HERD_TOKEN || undefined) ?? (saved && saved.url === base ? saved.token : undefined);
  return { url: base, token };
}

/** A small client of herd's HTTP API (JSON in, JSON out), authenticated by a bearer token. */
export class HerdClient {
  constructor(
    readonly url: string,
    readonly token?: string,
  ) {}

  get<T>(pathname: string, query: Record<string, string | number | undefined> = {}): Promise<T> {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
    const qs = params.size ? `?${params}` : '';
    return this.request<T>('GET', `${pathname}${qs}`);
  }

  post<T>(pathname: string, body: unknown): Promise<T> {
    return this.request<T>('POST', pathname, body);
  }

  put<T>(pathname: string, body: unknown): Promise<T> {
    return this.request<T>('PUT', pathname, body);
  }

  patch<T>(pathname: string, body: unknown): Promise<T> {
    return this.request<T>('PATCH', pathname, body);
  }

  async request<T>(method: string, pathname: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(`${this.url}${pathname}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new ClientError(
        `cannot reach herd at ${this.url}: ${cause?.code ?? cause?.message ?? (err as Error).message}`,
      );
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = text;
    }
    if (!res.ok) {
      const e = (parsed ?? {}) as { error?: unknown; message?: unknown };
      throw new ApiError(
        res.status,
        typeof e.error === 'string' ? e.error : `http_${res.status}`,
        typeof e.message === 'string' ? e.message : res.statusText || text.slice(0, 200),
        parsed,
      );
    }
    return parsed as T;
  }
}
