import type { Context, ErrorHandler, MiddlewareHandler } from 'hono';
import type { Logger } from '../logger.ts';
import type { Principal } from '../rpc/context.ts';
import { AppError, errorEnvelope, logFailure, toAppError } from '../rpc/errors.ts';

/** The Hono app's context variables, shared by every HTTP module. */
export type Env = {
  Variables: {
    requestId: string;
    principal: Principal;
    /** The RateLimit-* headers of the request's credential, once the limiter has counted it. */
    rateLimitHeaders: Record<string, string>;
    /** The response `answer` built, with every header already: the header middleware leaves it alone. */
    answered: Response;
    /** The registry's resource and action of the call, once it is prepared: the access log and metrics label by them. */
    rpc: { resource: string; action: string };
  };
};

/**
 * The security headers of every answer: what a JSON API needs (OWASP REST Security cheat sheet). The other six
 * of Hono's `secureHeaders()` default set (COOP, Origin-Agent-Cluster, X-XSS-Protection, …) matter only to a
 * browser rendering a document: the one HTML page, `/docs`, gets them (docs/api.md, Errors: Security headers).
 */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'strict-transport-security': 'max-age=15552000; includeSubDomains',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
};

/** Answers of `/v1` hold one caller's data: no cache may keep them. */
const API_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'application/json',
  'cache-control': 'no-store',
  ...SECURITY_HEADERS,
};

/** A client's X-Request-Id is echoed when it is plausible (as hono/request-id checks it), else one is made. */
const PLAUSIBLE_REQUEST_ID = /^[\w\-=]{1,255}$/;

/**
 * A JSON answer (envelope or error) with its headers as a plain object: the request id, the security and
 * rate-limit headers, and `extra`. Hand-rolled rather than hono's requestId + secureHeaders and `c.header()`,
 * which go through WHATWG `Headers` objects on the hot path (docs/performance.md, Headers).
 *
 * @example return answer(c, 200, { success: true, data });
 */
export function answer(c: Context<Env>, status: number, body: unknown, extra?: Record<string, string>): Response {
  // Object.assign, not a spread followed by more keys: that turns the object into a slow dictionary.
  const headers = Object.assign({ 'x-request-id': c.get('requestId') }, API_HEADERS, c.get('rateLimitHeaders'), extra);
  const res = new Response(JSON.stringify(body), { status, headers });
  // A context variable, not a WeakSet of responses: weak entries per request make every scavenge dearer
  // (docs/performance.md, Kysely's dialect).
  c.set('answered', res);
  return res;
}

/**
 * Gives every request its id, and every response not built by `answer` the same headers `answer` sets.
 *
 * @example app.use(responseHeaders());
 */
export function responseHeaders(): MiddlewareHandler<Env> {
  return async function responseHeaders(c, next) {
    const sent = c.req.header('x-request-id');
    c.set('requestId', sent !== undefined && PLAUSIBLE_REQUEST_ID.test(sent) ? sent : crypto.randomUUID());
    await next();
    if (c.get('answered') === c.res) return;
    // Anything not built by `answer` (health, OpenAPI, docs, SSE, the WebSocket upgrade): the same headers,
    // through Hono's `Headers`; none of it is a hot path.
    const headers = c.res.headers;
    headers.set('x-request-id', c.get('requestId'));
    for (const [name, value] of Object.entries({ ...SECURITY_HEADERS, ...c.get('rateLimitHeaders') })) headers.set(name, value);
  };
}

/**
 * The one error handler: logs the failure (5xx with the request id) and answers the error envelope.
 *
 * @example app.onError(renderError(logger));
 */
export function renderError(logger: Logger): ErrorHandler<Env> {
  return function renderError(error, c) {
    const appError = toAppError(error);
    logFailure(logger, { message: 'request failed', appError, thrown: error, fields: requestFields(c) });
    return answer(c, appError.status, errorEnvelope(appError, c.get('requestId')), appError.headers);
  };
}

/** What the log says about the request that failed (with `logFailure`). */
export function requestFields(c: Context<Env>) {
  return { request_id: c.get('requestId'), method: c.req.method, path: c.req.path };
}

/** The request body as JSON; VALIDATION_ERROR when it is empty (unless optional) or malformed. */
export async function readJson(c: Context<Env>, options: { optional?: boolean } = {}): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === '') {
    if (options.optional) return undefined;
    throw new AppError({ code: 'VALIDATION_ERROR', message: 'The request body is empty; send a JSON object' });
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new AppError({
      code: 'VALIDATION_ERROR',
      message: `Malformed JSON: ${error instanceof SyntaxError ? error.message : 'could not parse the body'}`,
    });
  }
}
