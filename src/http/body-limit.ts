import type { IncomingMessage } from 'node:http';
import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit as countingBodyLimit } from 'hono/body-limit';

/** How much of a refused body is read (and dropped) before the 413 is written, at most: bytes, then time. */
const DRAIN_MAX_BYTES = 64 * 1024 * 1024;
const DRAIN_MAX_MS = 10_000;

/**
 * Hono's `bodyLimit`, without its cost on the common request, and with a 413 the client can always read.
 *
 * Hono's middleware starts with `c.req.raw.body`. Under @hono/node-server that getter turns the
 * lightweight request into a full WHATWG `Request` with a web `ReadableStream` over the socket, for every
 * request, and the body is then read through that stream rather than node-server's direct read: a large share
 * of a `goals.get`'s CPU (docs/performance.md, The body limit).
 *
 * A request that declares its length (Content-Length without Transfer-Encoding; Node's HTTP parser holds
 * the body to that length) is judged on the header alone. GET and HEAD carry no body. A chunked body is read here
 * from the Node request, counting, and handed on as the request's text (`c.req.text()` answers it).
 *
 * A refused request's 413 closes the connection (`onError` sets `Connection: close`), but only once the body the
 * client is sending has been read and dropped (up to 64 MiB or 10 s): closing a socket with unread data resets it,
 * and the client then loses the 413 it was about to read (a broken pipe mid-upload, or the next request on a
 * pooled keep-alive connection failing). In-process (`app.request`, no Node request) hono's middleware counts.
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
    const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
    const length = c.req.header('content-length');
    if (length !== undefined && c.req.header('transfer-encoding') === undefined) {
      if (Number.parseInt(length, 10) <= options.maxSize) return next();
      if (incoming) await drain(incoming, 0);
      return options.onError(c);
    }
    if (!incoming) return counting(c, next);
    const text = await readWithin(incoming, options.maxSize);
    if (text === undefined) return options.onError(c);
    // A promise, as hono caches bodies itself: an empty string would read as "not cached".
    c.req.bodyCache.text = Promise.resolve(text) as unknown as string;
    return next();
  };
}

/** The whole body as text, or undefined once it is over `maxSize` bytes (the rest is then drained). */
function readWithin(incoming: IncomingMessage, maxSize: number): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxSize) {
        chunks.push(chunk);
        return;
      }
      stop();
      void drain(incoming, size).then(() => resolve(undefined));
    };
    const onEnd = () => {
      stop();
      resolve(new TextDecoder().decode(Buffer.concat(chunks, size)));
    };
    const onError = (error: Error) => {
      stop();
      reject(error);
    };
    const stop = () => {
      incoming.off('data', onData).off('end', onEnd).off('error', onError);
    };
    incoming.on('data', onData).on('end', onEnd).on('error', onError);
  });
}

/** Reads and drops what is left of a refused body, so that closing after the 413 resets nothing; bounded. */
function drain(incoming: IncomingMessage, alreadyRead: number): Promise<void> {
  if (incoming.readableEnded || incoming.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    let size = alreadyRead;
    const timer = setTimeout(() => done(), DRAIN_MAX_MS);
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > DRAIN_MAX_BYTES) done();
    };
    const done = () => {
      clearTimeout(timer);
      incoming.off('data', onData).off('end', done).off('error', done).off('close', done);
      resolve();
    };
    incoming.on('data', onData).on('end', done).on('error', done).on('close', done);
  });
}
