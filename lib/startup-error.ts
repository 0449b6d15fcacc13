/**
 * What herd prints when it cannot start: one line saying what went wrong and what to do, no stack trace (the stack
 * is for HERD_LOG_LEVEL=debug). The errors an operator causes (a port in use, a missing file, a bad variable, a
 * database that will not start or cannot be reached) are named in their words.
 */
export function startupErrorLine(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number; path?: string };
  const problems = (e as { problems?: unknown }).problems;
  if (e.name === 'ConfigError' && Array.isArray(problems))
    return `invalid configuration: ${problems.join('; ')}`;
  if ((e as { userFacing?: boolean }).userFacing) return firstLine(e.message);
  switch (e.code) {
    case 'EADDRINUSE':
      return `${e.address ?? ''}${e.port ? `:${e.port}` : ''} is already in use: stop what listens there, or choose another port (HERD_HTTP_PORT, HERD_COLLECTD_PORT)`;
    case 'EADDRNOTAVAIL':
      return `${e.address ?? 'the address'} is not an address of this machine: check HERD_HTTP_HOST and HERD_COLLECTD_HOST`;
    case 'EACCES':
      if (e.syscall === 'listen' || e.syscall === 'bind')
        return `not allowed to listen on ${e.address ?? ''}${e.port ? `:${e.port}` : ''}: choose a port above 1023 or run with the right to bind it`;
      return `permission denied: ${e.path ?? firstLine(e.message)}`;
    case 'ENOENT':
      return e.path ? `${e.path} does not exist: ${firstLine(e.message)}` : firstLine(e.message);
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'ETIMEDOUT':
    case '28P01':
    case '3D000':
      return `cannot use the database: ${firstLine(e.message)} (check DATABASE_URL, or leave it unset for the embedded PostgreSQL)`;
    default:
      return firstLine(e.message);
  }
}

function firstLine(message: string): string {
  return message.split('\n')[0].trim();
}
