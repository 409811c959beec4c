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


/** The access log's line (`src/http/observe.ts`): the same fields on every request. */
export interface RequestLine {
  method: string;
  path: string;
  resource: string;
  action: string;
  status: number;
  duration_ms: number;
  request_id: string;
  user_id: string | null;
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
  /** The access-log line at `info` (`msg: "request completed"`); a logger without it gets `info` instead. */
  request?(line: RequestLine): void;
}

/** How often lines waiting in the destination's buffer are written out when traffic is too low to fill it. */
const FLUSH_EVERY_MS = 250;

/**
 * Where the server's lines go: `dest` (a file descriptor, 2 for stderr, or a path) through pino's asynchronous
 * destination, written in chunks of 8 KiB or every 250 ms, whichever comes first; pino writes what is pending when
 * the process exits. A line written as it comes, without the buffer, cost the access log twice the CPU
 * (docs/performance.md).
 *
 * @example createLogger('info', logDestination('/var/log/goalpost.log'))
 */
export function logDestination(dest: number | string): DestinationStream {
  return pino.destination({ dest, sync: false, minLength: 8192, periodicFlush: FLUSH_EVERY_MS } as Parameters<typeof pino.destination>[0]);
}

/**
 * JSON lines on stderr in pino's format (`level` as pino's number, `time` in ms, `msg`), one object per event;
 * stdout stays free for what the CLI prints and for the server's start-up banner. `destination` is for tests and
 * benchmarks.
 *
 * @example const logger = createLogger('info'); logger.info('listening', { port });
 */
export function createLogger(level: LogLevel = 'info', destination: DestinationStream = logDestination(2)): Logger {
  const base: Pino = pino({ level, base: { pid: process.pid } }, destination);
  const pid = process.pid;
  return {
    debug: (msg, fields) => base.debug(fields ? redact(fields) : {}, msg),
    info: (msg, fields) => base.info(fields ? redact(fields) : {}, msg),
    warn: (msg, fields) => base.warn(fields ? redact(fields) : {}, msg),
    error: (msg, fields) => base.error(fields ? redact(fields) : {}, msg),
    isEnabled: (at) => base.isLevelEnabled(at),
    // The line pino would write for `info(line, 'request completed')`, serialized here: its fields are known, so a
    // template beats pino's generic walk over them (docs/performance.md). Nothing in it can hold a credential.
    request(line) {
      if (!base.isLevelEnabled('info')) return;
      destination.write(
        `{"level":30,"time":${Date.now()},"pid":${pid},"method":${JSON.stringify(line.method)},"path":${JSON.stringify(line.path)},` +
          `"resource":${JSON.stringify(line.resource)},"action":${JSON.stringify(line.action)},"status":${line.status},` +
          `"duration_ms":${line.duration_ms},"request_id":${JSON.stringify(line.request_id)},` +
          `"user_id":${line.user_id === null ? 'null' : JSON.stringify(line.user_id)},"msg":"request completed"}\n`,
      );
    },
  };
}
