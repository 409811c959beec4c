import type { HonoRequest } from 'hono';
import type { Authenticator } from '../auth/authenticate.ts';
import type { RateLimiter, RateLimitVerdict } from '../auth/rate-limit.ts';
import type { Principal } from '../rpc/context.ts';
import type { DispatchDeps } from '../rpc/dispatch.ts';

// Every transport admits a caller the same way: credentials → a principal → one point of the credential's rate
// limit (`admit`), then the envelope → a prepared call (`prepare` of rpc/dispatch, with `dispatch` below). The two
// halves are apart because each transport places them: HTTP counts the point before it reads the body (a
// malformed body costs one too), the WebSocket admits its frames one after another in the order they came but
// prepares and runs them side by side.

/** What a caller presents: `Authorization: Bearer …` or `X-API-Key`, plus `X-User-Id` with the service key. */
export type Credentials = Parameters<Authenticator['authenticate']>[0];

export interface AdmissionDeps {
  authenticator: Authenticator;
  rateLimiter: RateLimiter;
  /** What `prepare` needs to turn an admitted caller's envelope into a call. */
  dispatch: DispatchDeps;
}

export interface Admitted {
  principal: Principal;
  /** The credential's budget after this point: the RateLimit-* headers of HTTP, `rate_limit` of a frame. */
  verdict: RateLimitVerdict;
}

/**
 * Checks the credentials and counts one point against their rate limit; throws UNAUTHORIZED, FORBIDDEN,
 * SERVICE_UNAVAILABLE or RATE_LIMIT_EXCEEDED (with its RateLimit-* headers) as the steps do.
 *
 * @example const { principal, verdict } = await admit(deps, headerCredentials(c.req));
 *          const call = await prepare(deps.dispatch, principal, envelope);
 */
export async function admit(deps: AdmissionDeps, credentials: Credentials): Promise<Admitted> {
  const principal = await deps.authenticator.authenticate(credentials);
  const verdict = await deps.rateLimiter.consume(principal.credentialId);
  return { principal, verdict };
}

/** The credentials of an HTTP request (or of a WebSocket's upgrade request). */
export function headerCredentials(req: HonoRequest): Credentials {
  return { authorization: req.header('authorization'), apiKey: req.header('x-api-key'), userId: req.header('x-user-id') };
}
