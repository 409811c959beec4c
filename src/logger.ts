import { pino, type DestinationStream, type Logger as Pino } from 'pino';

const levels = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof levels)[number];

/**
 * Fields that may hold a credential, wherever they sit (top level or one object down): their value is replaced
 * by "[redacted]" before the line is written. No log call passes such a field on purpose; this is the net under
 * the ones that might (an error's `cause` carrying a request, a debug line with a row).
 */
const SECRET_FIELDS = [
  'key',
  'api_key',
  'apiKey',
  'token',
  'secret',
  'password',
  'authorization',
  'Authorization',
  'x-api-key',
  'cookie',
  'service_key',
  'jwt',
];
const REDACT_PATHS = [...SECRET_FIELDS, ...SECRET_FIELDS.map((f) => `*.${f}`), ...SECRET_FIELDS.map((f) => `*["${f}"]`)];

type Fields = Record<string, unknown>;

/**
 * pino underneath, with the call shape the code uses: `logger.info(msg, fields)`.
 *
 * @example logger.error('request failed', { request_id, stack });
 */
export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  /** Whether a line at this level is written: lets a hot path skip building its fields. */
  isEnabled?(level: Exclude<LogLevel, 'silent'>): boolean;
}

/**
 * JSON lines on stderr in pino's format (`level` as pino's number, `time` in ms, `msg`), one object per event;
 * stdout stays free for what the CLI prints and for the server's start-up banner. `destination` is for tests.
 *
 * @example const logger = createLogger('info'); logger.info('listening', { port });
 */
export function createLogger(level: LogLevel = 'info', destination?: DestinationStream): Logger {
  const base: Pino = pino(
    {
      level,
      base: { pid: process.pid },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    },
    // Asynchronous writes keep the access log off the request's path (no buffering: a line is written at once,
    // whatever the traffic); pino flushes what is pending on exit.
    destination ?? pino.destination({ dest: 2, sync: false }),
  );
  return {
    debug: (msg, fields) => base.debug(fields ?? {}, msg),
    info: (msg, fields) => base.info(fields ?? {}, msg),
    warn: (msg, fields) => base.warn(fields ?? {}, msg),
    error: (msg, fields) => base.error(fields ?? {}, msg),
    isEnabled: (at) => base.isLevelEnabled(at),
  };
}
