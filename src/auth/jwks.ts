import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  jwksCache,
  type ExportedJWKSCache,
  type JSONWebKeySet,
  type JWKSCacheInput,
  type JWTVerifyGetKey,
} from 'jose';
import { AppError } from '../rpc/errors.ts';

/** What a session token from a key set may be signed with: asymmetric algorithms only (never HS*, never `none`). */
export const KEY_SET_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

export interface KeySetTiming {
  /** A fetched set is used this long, then fetched again. */
  maxAgeMs: number;
  /** After a fetch, a token naming a key the set lacks waits this long before it may make another fetch. */
  cooldownMs: number;
  /** A fetch that takes longer has failed. */
  timeoutMs: number;
  /** After a failed fetch, tokens are judged on the last good set (or answered 503) this long without fetching. */
  retryMs: number;
}

export const KEY_SET_TIMING: KeySetTiming = { maxAgeMs: 600_000, cooldownMs: 30_000, timeoutMs: 5_000, retryMs: 5_000 };

/**
 * The keys of `JWT_JWKS_URL`, for jose's `jwtVerify`: jose's remote key set (fetched, kept `maxAgeMs`, fetched again
 * for a key id it does not know at most once per `cooldownMs`), made to tell the provider's trouble from the token's.
 *
 * - The set cannot be fetched (no answer, an error status, a timeout, not a key set): the last set that could be
 *   fetched judges the token for the next `retryMs`, without another fetch; a token it has no key for, or any token
 *   when no set was ever fetched, is SERVICE_UNAVAILABLE with `Retry-After` — the token may well be good, and a 401
 *   would make a client sign its user out. So an outage costs one fetch per `retryMs`, not one per request.
 * - A token naming a key the set lacks: INVALID_TOKEN once jose has fetched the set again for it. Within the cooldown
 *   after a fetch jose does not fetch again, and the key may be one the provider has just added: SERVICE_UNAVAILABLE,
 *   with `Retry-After` for the rest of the cooldown.
 *
 * @example const { payload } = await jwtVerify(token, remoteKeySet(new URL(url)), { algorithms: KEY_SET_ALGORITHMS });
 */
export function remoteKeySet(url: URL, timing: KeySetTiming = KEY_SET_TIMING): JWTVerifyGetKey {
  // jose writes every set it fetches here (its `jwksCache` option): the last good set, for when fetching fails.
  const fetched: Partial<ExportedJWKSCache> = {};
  const remote = createRemoteJWKSet(url, {
    cacheMaxAge: timing.maxAgeMs,
    cooldownDuration: timing.cooldownMs,
    timeoutDuration: timing.timeoutMs,
    [jwksCache]: fetched as JWKSCacheInput,
  });
  let lastGood: { jwks: JSONWebKeySet; keys: JWTVerifyGetKey } | undefined;
  let failure: { until: number; cause: unknown } | undefined;

  const unavailable = (message: string, retryMs: number, cause: unknown) =>
    new AppError({
      code: 'SERVICE_UNAVAILABLE',
      message,
      headers: { 'Retry-After': String(Math.max(1, Math.ceil(retryMs / 1000))) },
      cause,
    });
  const away = (cause: unknown) =>
    unavailable("The identity provider's key set (JWT_JWKS_URL) cannot be fetched; try again shortly", failure!.until - Date.now(), cause);

  /** While fetching fails: the last good set judges the token; one it has no key for waits for the provider. */
  async function fromLastGood(header: Parameters<JWTVerifyGetKey>[0], token: Parameters<JWTVerifyGetKey>[1]) {
    if (fetched.jwks && lastGood?.jwks !== fetched.jwks) lastGood = { jwks: fetched.jwks, keys: createLocalJWKSet(fetched.jwks) };
    if (!lastGood) throw away(failure!.cause);
    try {
      return await lastGood.keys(header, token);
    } catch (error) {
      if (error instanceof errors.JWKSNoMatchingKey) throw away(failure!.cause);
      throw error;
    }
  }

  return async (header, token) => {
    if (failure && Date.now() < failure.until) return fromLastGood(header, token);
    const coolingDown = remote.coolingDown;
    try {
      const key = await remote(header, token);
      failure = undefined;
      return key;
    } catch (error) {
      if (error instanceof errors.JWKSNoMatchingKey) {
        // jose fetched the set again for this key id unless it was cooling down from a fetch a moment ago.
        if (!coolingDown) throw error;
        const retryMs = (fetched.uat ?? 0) + timing.cooldownMs - Date.now();
        throw unavailable('The session token names a key the identity provider has not published yet; try again shortly', retryMs, error);
      }
      // The token's algorithm or key cannot be used, or several keys match (jose then tries each): the token's affair.
      if (error instanceof errors.JOSENotSupported || error instanceof errors.JWKSMultipleMatchingKeys) throw error;
      failure = { until: Date.now() + timing.retryMs, cause: error };
      return fromLastGood(header, token);
    }
  };
}
