/**
 * Whether a request's `Origin` header names herd itself (its host and port as the request's `Host` says), so a
 * session cookie, which the browser sends whichever page opens the connection, may be used. `Origin: null`
 * (sandboxed frames, `file:` pages, redirects) and anything that is not a URL are foreign.
 */
export function isSameOrigin(origin: string, host: string | undefined): boolean {
  try {
    return new URL(origin).host === host;
  } catch {
    return false;
  }
}
