import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * The process logger. Custodia logs ids, codes and counts, never personal values: request
 * bodies and headers are not serialised, and the paths below are censored as a second line
 * of defence should a value ever reach a log call.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { service: 'custodia' },
    serializers: {
      // The path only: no query string, no headers, no client address, no body.
      req: (req: { method?: string; url?: string }) => ({
        method: req.method,
        path: (req.url ?? '').split('?')[0],
      }),
      res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
    },
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers.cookie',
        'body',
        'req.body',
        'password',
        'token',
        '*.email',
        '*.phone',
        '*.givenName',
        '*.familyName',
      ],
      censor: '[redacted]',
    },
  };
  return destination === undefined ? pino(options) : pino(options, destination);
}
