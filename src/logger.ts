import { pino, type DestinationStream, type Logger as Pino } from 'pino';

const levels = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof levels)[number];

type Fields = Record<string, unknown>;

/**
 * Fields that may hold a credential, wherever they sit (top level or one object down): their value is replaced by
 * "[redacted]" before the line is written. No log call passes such a field on purpose; this is the net under the
 * ones that might (an error's `cause` carrying a request, a debug line with a row). A scan of the field names here
 * rather than pino's `redact` option, which cost ~55 µs a line with these wildcard paths (docs/performance.md).
 */
const SECRET_FIELDS = new Set(
  ['key', 'api_key', 'apikey', 'token', 'secret', 'password', 'authorization', 'x-api-key', 'cookie', 'service_key', 'jwt'],
);
const REDACTED = '[redacted]';

function redact(fields: Fields, depth = 0): Fields {
  let out = fields;
  for (const name in fields) {
    const value = fields[name];
    let replaced: unknown = value;
    if (SECRET_FIELDS.has(name.toLowerCase())) replaced = REDACTED;
    else if (depth === 0 && value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Error)) {
      replaced = redact(value as Fields, 1);
    }
    if (replaced !== value) {
      if (out === fields) out = { ...fields };
      out[name] = replaced;
    }
  }
  return out;
}


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
    },
    // Asynchronous writes keep the access log off the request's path (no buffering: a line is written at once,
    // whatever the traffic); pino flushes what is pending on exit.
    destination ?? pino.destination({ dest: 2, sync: false }),
  );
  return {
    debug: (msg, fields) => base.debug(fields ? redact(fields) : {}, msg),
    info: (msg, fields) => base.info(fields ? redact(fields) : {}, msg),
    warn: (msg, fields) => base.warn(fields ? redact(fields) : {}, msg),
    error: (msg, fields) => base.error(fields ? redact(fields) : {}, msg),
    isEnabled: (at) => base.isLevelEnabled(at),
  };
}
