/** Typed errors thrown by domain code; the one error handler (api/app.ts) turns them into answers. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/**
 * Whether `err` is PostgreSQL's (node-pg's DatabaseError: a SQLSTATE and a severity). Its text names tables,
 * columns, constraints and types and quotes values, so it is logged and never shown to a client.
 */
export function isPostgresError(
  err: unknown,
): err is Error & { code: string; column?: string; constraint?: string } {
  const e = err as { code?: unknown; severity?: unknown };
  return (
    err instanceof Error &&
    typeof e.code === 'string' &&
    /^[0-9A-Z]{5}$/.test(e.code) &&
    typeof e.severity === 'string'
  );
}

/** What a client may be told about `err`: its message, unless PostgreSQL wrote it. */
export function publicMessage(err: unknown): string {
  if (isPostgresError(err)) return `the database refused the change (SQLSTATE ${err.code})`;
  return err instanceof Error ? err.message : String(err);
}

export const badRequest = (message: string, details?: Record<string, unknown>) =>
  new HttpError(400, 'bad_request', message, details);
export const unauthorized = (message = 'authentication required') =>
  new HttpError(401, 'unauthorized', message);
export const forbidden = (message = 'not allowed') => new HttpError(403, 'forbidden', message);
export const notFound = (what: string) => new HttpError(404, 'not_found', `${what} not found`);
export const conflict = (code: string, message: string, details?: Record<string, unknown>) =>
  new HttpError(409, code, message, details);
