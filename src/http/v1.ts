import { Hono, type MiddlewareHandler } from 'hono';
import { rateLimitHeaders } from '../auth/rate-limit.ts';
import type { Logger } from '../logger.ts';
import { prepare } from '../rpc/dispatch.ts';
import { AppError } from '../rpc/errors.ts';
import { admit, headerCredentials, type AdmissionDeps } from './admission.ts';
import { answer, readJson, type Env } from './answer.ts';
import { bodyLimit } from './body-limit.ts';
import { restRoutes, type Invoke } from './rest.ts';
import { streamCall, wantsEventStream } from './sse.ts';

/** The header of an answer stored for an Idempotency-Key and answered again (SPEC §1). */
const REPLAYED: Readonly<Record<string, string>> = { 'idempotent-replayed': 'true' };

export interface V1Deps extends AdmissionDeps {
  logger: Logger;
  bodyLimitBytes: number;
}

/**
 * The `/v1` API over HTTP: body limit → admission (credentials, principal, rate limit) → `POST /` with an
 * invoke envelope, and the REST-style routes. Every route ends in `invoke`.
 *
 * @example app.route('/v1', createV1({ authenticator, rateLimiter, dispatch, logger, bodyLimitBytes: 1 << 20 }));
 */
export function createV1(deps: V1Deps): Hono<Env> {
  const v1 = new Hono<Env>();
  v1.use(
    bodyLimit({
      maxSize: deps.bodyLimitBytes,
      onError: () => {
        // The connection closes after the answer (SPEC §2): what a client sends after a refused body is not trusted to be
        // a request. body-limit.ts reads the body out first, so the client reads this answer.
        throw new AppError({
          code: 'PAYLOAD_TOO_LARGE',
          message: `The request body is over ${deps.bodyLimitBytes} bytes`,
          headers: { connection: 'close' },
        });
      },
    }),
  );
  // Before the body is read: a malformed body costs a point too, and its answer carries the RateLimit-* headers.
  v1.use(admitRequest(deps));

  const invoke: Invoke = async (c, envelope) => {
    const idempotencyKey = c.req.header('idempotency-key');
    const call = await prepare(deps.dispatch, c.get('principal'), envelope, idempotencyKey === undefined ? undefined : { idempotencyKey });
    // Prepared: the envelope named a resource and action of the registry.
    const { resource, action } = envelope as { resource: string; action: string };
    c.set('rpc', { resource, action });
    if (call.action.streams && wantsEventStream(c)) return streamCall(c, call, deps.logger);
    // Only streaming actions use ctx.signal (to stop upstream work when the client goes away). Asking
    // @hono/node-server for the request's signal makes an AbortController per request, so others go without.
    const result = await call.run(call.action.streams ? { signal: c.req.raw.signal } : {});
    return answer(c, result.status, { success: true, data: result.data }, result.replayed ? REPLAYED : undefined);
  };

  v1.post('/', async (c) => invoke(c, await readJson(c)));
  v1.route('/', restRoutes(deps.dispatch.registry, invoke));
  return v1;
}

/** The HTTP side of the admission step: the principal and the RateLimit-* headers for what follows. */
function admitRequest(deps: AdmissionDeps): MiddlewareHandler<Env> {
  return async function admitRequest(c, next) {
    const { principal, verdict } = await admit(deps, headerCredentials(c.req));
    c.set('principal', principal);
    c.set('rateLimitHeaders', rateLimitHeaders(verdict));
    await next();
  };
}
