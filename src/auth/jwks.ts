import { createLocalJWKSet, decodeJwt, errors, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { AppError } from '../rpc/errors.ts';

/** What a session token from a key set may be signed with: asymmetric algorithms only (never HS*, never `none`). */
export const KEY_SET_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

export interface KeySetTiming {
  /** A fetched set is used this long as it is, then fetched again in the background while it goes on serving. */
  maxAgeMs: number;
  /** While fetching fails, a set goes on serving this much longer past `maxAgeMs`; then every token waits for one. */
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
 * - Anything else jose finds wrong with a token or its key (an algorithm the key is not for, several keys that could
 *   match, a key that does not import) is the token's affair: INVALID_TOKEN, and nothing is fetched for it.
 *
 * @example const { payload } = await jwtVerify(token, remoteKeySet(new URL(url)), { algorithms: KEY_SET_ALGORITHMS });
 */
export function remoteKeySet(url: URL, timing: KeySetTiming = KEY_SET_TIMING): JWTVerifyGetKey {
  let held: { keys: JWTVerifyGetKey; fetchedAt: number } | undefined;
  let fetching: Promise<void> | undefined;
  let failure: { until: number; cause: unknown } | undefined;
  let lastFetchAt = -Infinity;

  /** Fetches the set (one fetch at a time); never throws: a failure is recorded in `failure`. */
  function fetchSet(): Promise<void> {
    fetching ??= (async () => {
      lastFetchAt = Date.now();
      try {
        const response = await fetch(url, {
          signal: AbortSignal.timeout(timing.timeoutMs),
          redirect: 'manual',
          headers: { accept: 'application/jwk-set+json, application/json' },
        });
        if (response.status !== 200) throw new Error(`GET ${url.href} answered ${response.status}`);
        // createLocalJWKSet checks the shape (JWKSInvalid): a set that is not one is a failed fetch.
        held = { keys: createLocalJWKSet((await response.json()) as JSONWebKeySet), fetchedAt: Date.now() };
        failure = undefined;
      } catch (cause) {
        failure = { until: Date.now() + timing.retryMs, cause };
      } finally {
        fetching = undefined;
      }
    })();
    return fetching;
  }

  const mayFetch = () => failure === undefined || Date.now() >= failure.until;
  const usable = () => held !== undefined && Date.now() - held.fetchedAt <= timing.maxAgeMs + timing.maxStaleMs;
  const unavailable = (message: string, retryAt: number, cause: unknown) =>
    new AppError({
      code: 'SERVICE_UNAVAILABLE',
      message,
      headers: { 'Retry-After': String(Math.max(1, Math.ceil((retryAt - Date.now()) / 1000))) },
      cause,
    });
  const away = () =>
    unavailable(
      "The identity provider's key set (JWT_JWKS_URL) cannot be fetched; try again shortly",
      failure?.until ?? Date.now() + timing.retryMs,
      failure?.cause,
    );

  return async (header, token) => {
    const started = Date.now();
    if (!usable()) {
      if (mayFetch()) await fetchSet();
      if (!usable()) throw away();
    } else if (Date.now() - held!.fetchedAt > timing.maxAgeMs && mayFetch()) {
      void fetchSet();
    }
    const set = held!;
    try {
      return await set.keys(header, token);
    } catch (error) {
      if (!(error instanceof errors.JWKSNoMatchingKey)) throw error;
      if (set.fetchedAt >= started) throw error; // fetched for this very token: the key is not published
      // A key id the set lacks: fetch the set again (or wait for the fetch under way), at most once per cooldown.
      if (fetching || (Date.now() - lastFetchAt >= timing.cooldownMs && mayFetch())) {
        await (fetching ?? fetchSet());
        if (held !== set) return held!.keys(header, token); // a fresh set decides
      }
      if (!mayFetch()) throw away(); // the fetch failed, now or a moment ago: nobody can tell
      if (signedAfter(token, set.fetchedAt - CLOCK_SKEW_MS)) {
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
