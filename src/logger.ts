const levels = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const;
export type LogLevel = keyof typeof levels;

/**
 * JSON lines on stderr, one object per event; stdout stays free for what the CLI prints.
 *
 * @example logger.error('request failed', { request_id, stack });
 */
export function createLogger(level: LogLevel = 'info') {
  const min = levels[level];
  const log = (at: Exclude<LogLevel, 'silent'>, msg: string, fields: Record<string, unknown> = {}) => {
    if (levels[at] < min) return;
    process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level: at, msg, ...fields })}\n`);
  };
  return {
    debug: (msg: string, fields?: Record<string, unknown>) => log('debug', msg, fields),
    info: (msg: string, fields?: Record<string, unknown>) => log('info', msg, fields),
    warn: (msg: string, fields?: Record<string, unknown>) => log('warn', msg, fields),
    error: (msg: string, fields?: Record<string, unknown>) => log('error', msg, fields),
  };
}

export type Logger = ReturnType<typeof createLogger>;
