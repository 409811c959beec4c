import type { z } from 'zod';
import type { Logger } from '../logger.ts';

/** Every error code the API answers with, and its HTTP status. */
export const errorStatus = {
  VALIDATION_ERROR: 400,
  INVALID_ACTION: 400,
  INVALID_RESOURCE: 400,
  UNAUTHORIZED: 401,
  INVALID_KEY_PREFIX: 401,
  KEY_NOT_FOUND: 401,
  INVALID_TOKEN: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  AGENT_NOT_FOUND: 404,
  CONFLICT: 409,
  METHOD_NOT_ALLOWED: 405,
  PAYLOAD_TOO_LARGE: 413,
  IDEMPOTENCY_KEY_REUSED: 422,
  RATE_LIMIT_EXCEEDED: 429,
  INTERNAL_ERROR: 500,
  UPSTREAM_ERROR: 502,
  SERVICE_UNAVAILABLE: 503,
} as const;

export type ErrorCode = keyof typeof errorStatus;
export type ErrorStatus = (typeof errorStatus)[ErrorCode];

const defaultMessage: Record<ErrorCode, string> = {
  VALIDATION_ERROR: 'The request is not valid',
  INVALID_ACTION: 'Unknown action',
  INVALID_RESOURCE: 'Unknown resource',
  UNAUTHORIZED: 'Authentication required: send Authorization: Bearer <key> or X-API-Key: <key>',
  INVALID_KEY_PREFIX: 'The credential is neither a session token nor a key with a known prefix',
  KEY_NOT_FOUND: 'The API key does not exist or has been revoked',
  INVALID_TOKEN: 'The session token is malformed, expired or badly signed',
  FORBIDDEN: 'You are not allowed to do this',
  NOT_FOUND: 'The record does not exist or you have no access to it',
  AGENT_NOT_FOUND: 'The agent does not exist or you have no access to it',
  CONFLICT: 'The request conflicts with the current state of the record',
  METHOD_NOT_ALLOWED: 'This route does not take this method; the Allow header lists the ones it takes',
  PAYLOAD_TOO_LARGE: 'The request body is too large',
  IDEMPOTENCY_KEY_REUSED: 'This Idempotency-Key was used for a different request',
  RATE_LIMIT_EXCEEDED: 'Too many requests',
  INTERNAL_ERROR: 'Something went wrong on our side; quote the request id if you report it',
  UPSTREAM_ERROR: 'The AI provider failed',
  SERVICE_UNAVAILABLE: 'The service is temporarily unavailable; try again shortly',
};

export interface IssueDetail {
  path: (string | number)[];
  message: string;
  type: string;
}

/**
 * The one error type. Handlers throw it; the app's single error handler renders the envelope.
 *
 * @example throw new AppError({ code: 'NOT_FOUND' });
 */
export class AppError extends Error {
  override name = 'AppError';
  readonly code: ErrorCode;
  readonly status: ErrorStatus;
  readonly details?: unknown;
  /** Extra response headers (Retry-After for 429 and 503, Allow for 405). */
  readonly headers?: Record<string, string>;

  constructor(options: {
    code: ErrorCode;
    message?: string;
    details?: unknown;
    cause?: unknown;
    headers?: Record<string, string>;
  }) {
    super(options.message ?? defaultMessage[options.code], { cause: options.cause });
    this.code = options.code;
    this.status = errorStatus[options.code];
    this.details = options.details;
    // Every 503 says when to come back (SPEC §2).
    this.headers =
      options.code === 'SERVICE_UNAVAILABLE' && options.headers?.['Retry-After'] === undefined
        ? { ...options.headers, 'Retry-After': String(RETRY_AFTER_SECONDS) }
        : options.headers;
  }
}

/**
 * The error envelope of SPEC §2, the same on every transport (HTTP, SSE `error` events, WebSocket
 * `result` frames).
 */
export function errorEnvelope(error: AppError, requestId: string) {
  return {
    success: false as const,
    error: {
      code: error.code,
      message: error.message,
      status: error.status,
      ...(error.details !== undefined && { details: error.details }),
      request_id: requestId,
    },
  };
}

/**
 * zod issues as the `details` of an error, each `path` prefixed with where the value sat.
 *
 * @example issueDetails(parsed.error.issues, ['data']) // [{ path: ['data', 'name'], message: '…', type: 'too_small' }]
 */
export function issueDetails(issues: z.core.$ZodIssue[], prefix: (string | number)[] = []): IssueDetail[] {
  return issues.map((issue) => ({
    path: [...prefix, ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))],
    message: issue.message,
    type: issue.code,
  }));
}

/** A VALIDATION_ERROR from zod issues, `path` prefixed with where the value sat in the request. */
export function validationError(issues: z.core.$ZodIssue[], prefix: (string | number)[] = []): AppError {
  const details = issueDetails(issues, prefix);
  const first = details[0];
  const where = first && first.path.length > 0 ? `${first.path.join('.')}: ` : '';
  return new AppError({ code: 'VALIDATION_ERROR', message: `${where}${first?.message ?? 'invalid input'}`, details });
}

// postgres.js / Node error codes that mean "the database cannot be reached right now".
const unavailableCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EPIPE',
  'EAI_AGAIN',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '53300', // too_many_connections
  'DATABASE_UNAVAILABLE', // no answer within DB_UNAVAILABLE_TIMEOUT_MS (src/db/availability.ts)
]);

/** Seconds a client is told to wait after a 503: the database is probed every 100 ms, so a retry soon is cheap. */
export const RETRY_AFTER_SECONDS = 1;

/**
 * Anything thrown → AppError. Unknown errors become INTERNAL_ERROR, keeping the cause for the log;
 * an unreachable database becomes SERVICE_UNAVAILABLE.
 */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    if (unavailableCodes.has(code)) {
      return new AppError({
        code: 'SERVICE_UNAVAILABLE',
        message: 'The database is unreachable; retry shortly. A write may or may not have been applied: retry it with the same Idempotency-Key',
        cause: error,
      });
    }
    // serialization_failure / deadlock_detected: the client may retry the same request.
    if (code === '40001' || code === '40P01') {
      return new AppError({ code: 'CONFLICT', message: 'A concurrent request changed the same records; retry', cause: error });
    }
    // foreign_key_violation: every record a write refers to is checked first (its owner's, or NOT_FOUND), so
    // this is one deleted by a concurrent request in between (the caller's own user, say). A retry answers
    // as the records now are.
    if (code === '23503') {
      return new AppError({ code: 'CONFLICT', message: 'A record this request refers to was deleted meanwhile; retry', cause: error });
    }
    // character_not_in_repertoire (text) / untranslatable_character (jsonb): client text that Postgres
    // cannot store, the NUL character U+0000.
    // invalid_datetime_format / datetime_field_overflow / invalid_time_zone_displacement_value: the
    // schemas bound dates, this is the net under them.
    if (code === '22007' || code === '22008' || code === '22009') {
      return new AppError({ code: 'VALIDATION_ERROR', message: 'A date is out of the range Postgres can store', cause: error });
    }
    if (code === '22021' || code === '22P05') {
      return new AppError({
        code: 'VALIDATION_ERROR',
        message: 'A text value holds a character that cannot be stored (the NUL character, \\u0000)',
        cause: error,
      });
    }
  }
  return new AppError({ code: 'INTERNAL_ERROR', cause: error });
}

/**
 * Logs an error answered with a 5xx (a bug or an outage): its code and its cause's message and stack, which
 * the client never sees, beside `fields` saying which request it was. A 4xx is the client's and is not logged.
 *
 * @example logFailure(logger, { message: 'request failed', appError, thrown: error, fields: { request_id, path } });
 */
export function logFailure(
  logger: Logger,
  failure: { message: string; appError: AppError; thrown: unknown; fields: Record<string, unknown> },
): void {
  const { message, appError, thrown, fields } = failure;
  if (appError.status < 500) return;
  const cause = appError.cause ?? thrown;
  logger.error(message, {
    ...fields,
    code: appError.code,
    error: cause instanceof Error ? cause.message : String(cause),
    stack: cause instanceof Error ? cause.stack : undefined,
  });
}
