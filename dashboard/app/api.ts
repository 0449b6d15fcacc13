/** What the API answers on failure: `{error, message, field?}` with the HTTP status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly body: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export interface List<T> {
  items: T[];
  total: number;
}

const CSRF_KEY = 'herd.csrf';

/** Kept after login: the session cookie authenticates, this header proves the page is herd's own. */
export function rememberCsrf(token: string | null): void {
  if (token) localStorage.setItem(CSRF_KEY, token);
  else localStorage.removeItem(CSRF_KEY);
}

/** Calls the API with the session cookie. A 401 sends the page to the login (event `herd:unauthorized`). */
export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const csrf = localStorage.getItem(CSRF_KEY);
  if (method !== 'GET' && csrf) headers['x-csrf-token'] = csrf;
  const res = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 204) return undefined as T;
  const data = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (!res.ok) {
    if (res.status === 401 && path !== '/api/v1/session')
      window.dispatchEvent(new Event('herd:unauthorized'));
    throw new ApiError(
      res.status,
      String(data.error ?? 'error'),
      String(data.message ?? res.statusText),
      data,
    );
  }
  return data as T;
}

export const get = <T>(path: string) => api<T>('GET', path);

/** Every item of a list endpoint, page by page. */
export async function getAll<T>(path: string): Promise<T[]> {
  const out: T[] = [];
  const sep = path.includes('?') ? '&' : '?';
  for (;;) {
    const page = await get<List<T>>(`${path}${sep}limit=1000&offset=${out.length}`);
    out.push(...page.items);
    if (page.items.length === 0 || out.length >= page.total) return out;
  }
}

/** `{a: 1, b: undefined}` → `?a=1`. */
export function query(params: Record<string, string | number | undefined | null>): string {
  const entries = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== '');
  return entries.length ? `?${new URLSearchParams(entries.map(([k, v]) => [k, String(v)]))}` : '';
}
