// The one way to make a logger: pino, JSON lines, level from LOG_LEVEL, secrets redacted.
// Create it at the top (bin/) and pass it down; parts take child loggers with their bindings.

import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino';

/** Keys never written to a log, at the top level, one level down, and in request headers. */
export const REDACTED_KEYS = ['token', 'password', 'apiKey', 'authorization'] as const;

const REDACT_PATHS = [
  ...REDACTED_KEYS,
  ...REDACTED_KEYS.map((key) => `*.${key}`),
  'req.headers.authorization',
  'req.headers.cookie',
];

/**
 * Creates the program's logger. `options` are pino's and win over the defaults; the level is
 * `options.level`, else the LOG_LEVEL environment variable, else `info`.
 */
export function createLogger(
  options: LoggerOptions = {},
  destination?: DestinationStream,
  env: NodeJS.ProcessEnv = process.env,
): Logger {
  const settings: LoggerOptions = {
    level: env.LOG_LEVEL || 'info',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    ...options,
  };
  return destination ? pino(settings, destination) : pino(settings);
}

export type { Logger };
