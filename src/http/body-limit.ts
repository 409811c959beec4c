import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit as countingBodyLimit } from 'hono/body-limit';

/**
 * Hono's `bodyLimit`, without its cost on the common request.
 *
 * Hono's middleware starts with `c.req.raw.body`. Under @hono/node-server that getter turns the
 * lightweight request into a full WHATWG `Request` with a web `ReadableStream` over the socket, for every
 * request, and the body is then read through that stream rather than node-server's direct read: a large share
 * of a `goals.get`'s CPU (docs/performance.md, The body limit).
 *
 * A request that declares its length (Content-Length without Transfer-Encoding; Node's HTTP parser holds
 * the body to that length) is judged on the header alone — exactly what hono's middleware does for it
 * once it has built the stream. GET and HEAD carry no body. Anything else (a chunked body) still goes
 * through hono's middleware, which counts the bytes as they arrive and refuses past `maxSize`.
 *
 * @example v1.use(bodyLimit({ maxSize: 1 << 20, onError: () => { throw new AppError({ code: 'PAYLOAD_TOO_LARGE' }); } }));
 */
export function bodyLimit(options: {
  maxSize: number;
  onError: (c: Context) => Response | Promise<Response>;
}): MiddlewareHandler {
  const counting = countingBodyLimit(options);
  return async function bodyLimit(c, next) {
    if (c.req.method === 'GET' || c.req.method === 'HEAD') return next();
    const length = c.req.header('content-length');
    if (length === undefined || c.req.header('transfer-encoding') !== undefined) return counting(c, next);
    return Number.parseInt(length, 10) > options.maxSize ? options.onError(c) : next();
  };
}
