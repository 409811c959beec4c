import { createLocalJWKSet, decodeJwt, errors, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { AppError } from '../rpc/errors.ts';

/** What a session token from a key set may be signed with: asymmetric algorithms only (never HS*, never `none`). */
export const KEY_SET_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

export interface KeySetTiming {
  /** A fetched set is used this long as it is; the next request past it fetches it again, in the background. */
  maxAgeMs: number;
  /**
   * Past `maxAgeMs`, a set goes on serving this much longer while it is being fetched again or fetching fails (also the
   * first request after a quiet spell is judged on it while the fetch runs); past that, every token waits for a fetch.
   */
  maxStaleMs: number;
  /** A token naming a key id the set lacks makes a fetch at most this often. */
  cooldownMs: number;
  /** A fetch that takes longer has failed. */
  timeoutMs: number;
  /** After a failed fetch, this long before the next one. */
  retryMs: number;
}

export const KEY_SET_TIMING: KeySetTiming = {
  maxAgeMs: 10 * 60_000,
  maxStaleMs: 60 * 60_000,
  cooldownMs: 30_000,
  timeoutMs: 5_000,
  retryMs: 5_000,
};

/** A token signed this long before a set was fetched names a key the provider had published by then. */
const CLOCK_SKEW_MS = 60_000;

/**
 * The keys of `JWT_JWKS_URL`, for jose's `jwtVerify`. jose matches and imports the keys (`createLocalJWKSet`); this
 * decides when to fetch the set and what a failure to fetch it means, which jose's remote key set leaves to a
 * request that happens to come along (it fetches in the request, and treats a provider that is away like a bad token).
 *
 * - One fetch at a time. The set serves `maxAgeMs`, then is fetched again in the background while it goes on serving:
 *   no request waits for the provider once a set is held.
 * - A fetch fails (no answer within `timeoutMs`, an error status, not a key set): the set held goes on serving, up to
 *   `maxStaleMs` past its age, and the next fetch waits `retryMs`; an outage costs one fetch per `retryMs`, not one per
 *   request. A token the held set has no key for, or any token with no usable set, is SERVICE_UNAVAILABLE with
 *   `Retry-After`: the token may well be good, and a 401 makes a client sign its user out.
 * - A token naming a key id the set lacks makes a fetch (at most one per `cooldownMs`), and is INVALID_TOKEN when the
 *   fresh set lacks it too. Within the cooldown, a token signed after the set was fetched (its `iat`, give or take a
 *   minute of clock skew) may use a key the provider has just published: SERVICE_UNAVAILABLE until the next fetch may
 *   run; an older one is INVALID_TOKEN, as the provider publishes a key before signing with it.
 * - Anything else jose finds wrong with a token or its key (no key id, a key id the set has but for another
 *   algorithm, several keys that could match, a key that does not import) is the token's affair: INVALID_TOKEN, and
 *   nothing is fetched for it.
 * - Times are on the monotonic clock; a set counts as of when it was asked for (a token that waited for a fetch may
 *   be newer than the answer, and is judged by its `iat` as within the cooldown).
 *
 * @example const { payload } = await jwtVerify(token, remoteKeySet(new URL(url)), { algorithms: KEY_SET_ALGORITHMS });
 */
export function remoteKeySet(url: URL, timing: KeySetTiming = KEY_SET_TIMING): JWTVerifyGetKey {
  // Durations on the monotonic clock (a wall clock stepped back would stretch every window); the wall-clock time a
  // set was asked for only to compare with a token's `iat`.
  const now = () => performance.now();
  let held: { keys: JWTVerifyGetKey; kids: Set<unknown>; askedAt: number; askedAtWall: number } | undefined;
  let fetching: Promise<void> | undefined;
  let failure: { until: number; cause: unknown } | undefined;
  let lastFetchAt = -Infinity;

  /** Fetches the set (one fetch at a time); never rejects: a failure is recorded in `failure`. */
  function fetchSet(): Promise<void> {
    fetching ??= (async () => {
      const askedAt = (lastFetchAt = now());
      const askedAtWall = Date.now();
      try {
        const response = await fetch(url, {
          signal: AbortSignal.timeout(timing.timeoutMs), // the body's read included
          redirect: 'manual',
          headers: { accept: 'application/jwk-set+json, application/json' },
        });
        if (response.status !== 200) throw new Error(`GET ${url.href} answered ${response.status}`);
        const jwks = (await response.json()) as JSONWebKeySet;
        // createLocalJWKSet checks the shape (JWKSInvalid): a set that is not one is a failed fetch. The set counts as
        // of when it was asked for: a token that arrived while it was on its way may be newer than the answer.
        held = { keys: createLocalJWKSet(jwks), kids: new Set(jwks.keys.map((key) => key.kid)), askedAt, askedAtWall };
        failure = undefined;
      } catch (cause) {
        failure = { until: now() + timing.retryMs, cause };
      }
    })().finally(() => {
      fetching = undefined; // after the assignment above, even if the body threw before its first await
    });
    return fetching;
  }

  const mayFetch = () => failure === undefined || now() >= failure.until;
  const usable = () => held !== undefined && now() - held.askedAt <= timing.maxAgeMs + timing.maxStaleMs;
  const unavailable = (message: string, retryAt: number, cause: unknown) =>
    new AppError({
      code: 'SERVICE_UNAVAILABLE',
      message,
      headers: { 'Retry-After': String(Math.max(1, Math.ceil((retryAt - now()) / 1000))) },
      cause,
    });
  const away = () =>
    unavailable(
      "The identity provider's key set (JWT_JWKS_URL) cannot be fetched; try again shortly",
      failure?.until ?? now() + timing.retryMs,
      failure?.cause,
    );

  return async (header, token) => {
    const started = now();
    if (!usable()) {
      if (mayFetch()) await fetchSet();
      if (!usable()) throw away();
    } else if (now() - held!.askedAt > timing.maxAgeMs && mayFetch()) {
      void fetchSet();
    }
    let set = held!;
    try {
      return await set.keys(header, token);
    } catch (error) {
      if (!(error instanceof errors.JWKSNoMatchingKey)) throw error;
      // Only a key id the set lacks may be a key published since; one it has (with another algorithm, key type,
      // use…), or none at all, is the token's affair.
      if (typeof header.kid !== 'string' || set.kids.has(header.kid)) throw error;
      if (set.askedAt >= started) throw error; // asked for after this token arrived: the key is not published
      // Fetch the set again (or wait for the fetch under way), at most once per cooldown.
      if (fetching || (now() - lastFetchAt >= timing.cooldownMs && mayFetch())) {
        await (fetching ?? fetchSet());
        if (held !== set) {
          set = held!;
          try {
            return await set.keys(header, token);
          } catch (again) {
            // Asked for after this token arrived, it decides; asked for before, the token is judged as below.
            if (!(again instanceof errors.JWKSNoMatchingKey) || set.askedAt >= started) throw again;
          }
        }
      }
      if (!mayFetch()) throw away(); // the fetch failed, now or a moment ago: nobody can tell
      if (signedAfter(token, set.askedAtWall - CLOCK_SKEW_MS)) {
        throw unavailable(
          'The session token names a key the identity provider may have just published; try again shortly',
          lastFetchAt + timing.cooldownMs,
          error,
        );
      }
      throw error;
    }
  };
}

/** Whether a token says it was issued after `at` (its `iat`; not yet verified, so it decides only this token's answer). */
function signedAfter(token: Parameters<JWTVerifyGetKey>[1], at: number): boolean {
  try {
    const { iat } = decodeJwt(`${token.protected}.${token.payload}.${token.signature}`);
    return typeof iat === 'number' && iat * 1000 > at;
  } catch {
    return false;
  }
}
