import { type Logger, pino } from 'pino';

export type { Logger };

/** One structured logger for the whole process; secrets are redacted wherever they appear. */
export function createLogger(level: string, name = 'herd'): Logger {
  return pino({
    name,
    level,
    redact: {
      paths: [
        'password',
        '*.password',
        'token',
        '*.token',
        'chapSecret',
        '*.chapSecret',
        '*.*.chapSecret',
        'req.headers.authorization',
        'req.headers.cookie',
        'headers.authorization',
        'config.adminPassword',
      ],
      censor: '[redacted]',
    },
  });
}
